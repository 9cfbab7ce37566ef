package main

import (
	"errors"
	"io"
)

func serve(args []string, stderr io.Writer) error {
	return errors.New("serve: not implemented yet")
}
