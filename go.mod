module github.com/netrunner-go/netrunner

go 1.26.0

require (
	go.uber.org/goleak v1.3.0
	golang.org/x/sync v0.25.0
	golang.org/x/sys v0.50.0
)

require golang.org/x/crypto v0.59.0
