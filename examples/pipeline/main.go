// Command pipeline prints the most frequent words of a file, computed by a
// pipeline of Unix tools whose data never passes through the Go program:
//
//	go run ./examples/pipeline [file]   # default: README.md
//
// It runs the equivalent of
//
//	tr -cs A-Za-z '\n' < file | tr A-Z a-z | sort | uniq -c | sort -rn | head -n 10
//
// and streams the result line by line.
package main

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"

	"github.com/netrunner-go/netrunner"
)

func main() {
	name := "README.md"
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	in, err := os.Open(name)
	if err != nil {
		log.Fatal(err)
	}
	defer in.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	split := netrunner.Command("tr", "-cs", "A-Za-z", `\n`)
	split.Stdin = in // an *os.File is handed to tr as is: Go reads none of it
	p, err := netrunner.Pipeline(
		split,
		netrunner.Command("tr", "A-Z", "a-z"),
		netrunner.Command("sort"),
		netrunner.Command("uniq", "-c"),
		netrunner.Command("sort", "-rn"),
		// head exits after ten lines, and a sort still writing then dies
		// of SIGPIPE: that is how a pipeline ends early, not a failure.
		netrunner.Command("head", "-n", "10"),
	).Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Stdout.Close()

	fmt.Printf("most frequent words in %s:\n", name)
	sc := bufio.NewScanner(p.Stdout) // a Stream is an io.Reader
	for sc.Scan() {
		count, word, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		fmt.Printf("%8s  %s\n", count, word)
	}
	if err := sc.Err(); err != nil {
		log.Fatal(err)
	}
	// Wait reports the failed stages, rightmost first, naming each.
	if err := p.Wait(ctx); err != nil {
		log.Fatal(err)
	}
	st := p.Stats()
	fmt.Printf("\n%d bytes read by Go (only the last stage's output), %d written; took %v\n",
		st.BytesOut, st.BytesIn, st.Duration.Round(1e6))
}
