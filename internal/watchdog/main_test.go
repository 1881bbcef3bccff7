package watchdog

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// testHelpers are modes in which the test binary, re-executed by a test with
// NETRUNNER_TEST_HELPER=<name>, plays another program.
var testHelpers = map[string]func(){}

func TestMain(m *testing.M) {
	if name := os.Getenv("NETRUNNER_TEST_HELPER"); name != "" {
		helper, ok := testHelpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown test helper %q\n", name)
			os.Exit(2)
		}
		helper()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}
