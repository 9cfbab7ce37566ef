// Command ganger-echo is Ganger's demo and test service: a small static TCP
// echo server. Flags make it print a banner, start listening late, or exit
// early, so tests can exercise every path of a session with one image.
//
// It echoes every byte back and honours half-close: when the client shuts
// its write side, the echo of everything received is finished before the
// server shuts its own.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	listen := flag.String("listen", ":7777", "address to listen on")
	banner := flag.String("banner", "", "line sent to each client on connect; %h stands for the host name (the container's id)")
	closeFirst := flag.Bool("close-write-first", false, "after the banner, shut the write side and read the client to EOF")
	delay := flag.Duration("delay", 0, "wait this long before listening (a slow-starting service)")
	exitAfter := flag.Duration("exit-after", 0, "exit this long after start, listening or not (0: never)")
	exitCode := flag.Int("exit-code", 3, "exit code used by -exit-after")
	flag.Parse()
	log.SetFlags(0)
	log.SetOutput(os.Stdout)

	if *exitAfter > 0 {
		go func() {
			time.Sleep(*exitAfter)
			log.Printf("exiting with code %d as asked (-exit-after %s)", *exitCode, *exitAfter)
			os.Exit(*exitCode)
		}()
	}
	if *delay > 0 {
		log.Printf("waiting %s before listening", *delay)
		time.Sleep(*delay)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	host, _ := os.Hostname()
	line := strings.ReplaceAll(*banner, "%h", host)
	log.Printf("listening on %s", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatalf("accept: %v", err)
		}
		go serve(c.(*net.TCPConn), line, *closeFirst)
	}
}

func serve(c *net.TCPConn, banner string, closeFirst bool) {
	defer c.Close()
	if banner != "" {
		if _, err := fmt.Fprintln(c, banner); err != nil {
			return
		}
	}
	if closeFirst {
		c.CloseWrite()
		n, _ := io.Copy(io.Discard, c)
		log.Printf("read %d bytes after closing the write side", n)
		return
	}
	if _, err := io.Copy(c, c); err != nil {
		return
	}
	c.CloseWrite()
}
