// Command genauthlog writes a deterministic, realistic auth.log for
// benchmarks (see package bench/authlog for what is in it).
//
//	genauthlog [-profile mixed|attack|mail|web] [-lines N] [-seed S] [-start RFC3339] [-host NAME] [-o FILE]
//
// The same flags always give the same file.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/palisade-project/palisade/bench/authlog"
)

func main() {
	lines := flag.Int("lines", 1_000_000, "number of lines")
	profile := flag.String("profile", "mixed", "kind of log: "+strings.Join(authlog.Profiles, ", "))
	seed := flag.Uint64("seed", 1, "random seed")
	start := flag.String("start", "2026-11-24T00:00:00Z", "time of the first line (RFC 3339)")
	host := flag.String("host", "web1", "host name in the syslog header")
	out := flag.String("o", "-", "output file (- = stdout)")
	flag.Parse()
	t0, err := time.Parse(time.RFC3339, *start)
	if err != nil || *lines < 0 {
		fmt.Fprintln(os.Stderr, "genauthlog: bad -start or -lines")
		os.Exit(2)
	}
	w := io.Writer(os.Stdout)
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "genauthlog:", err)
			os.Exit(1)
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	g, err := authlog.NewProfile(*profile, *seed, t0, *host)
	if err != nil {
		fmt.Fprintln(os.Stderr, "genauthlog:", err)
		os.Exit(2)
	}
	for i := 0; i < *lines; i++ {
		bw.Write(g.Line())
	}
	if err := bw.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "genauthlog:", err)
		os.Exit(1)
	}
}
