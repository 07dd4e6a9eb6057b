package main

import (
	"flag"
	"fmt"
	"io"
)

func flagSet(stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("devdb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: devdb [-dir PATH] [-fast] -- COMMAND [ARGS...]")
		fs.PrintDefaults()
	}
	return fs
}
