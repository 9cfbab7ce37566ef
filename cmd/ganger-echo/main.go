// Command ganger-echo is Ganger's demo and test service: a small static TCP
// echo server. Flags make it print a banner, start listening late, or exit
// early, so tests can exercise every path of a session with one image.
//
// It echoes every byte back and honours half-close: when the client shuts
// its write side, the echo of everything received is finished before the
// server shuts its own.
package main

import (
	"bufio"
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
	also := flag.String("also", "", "a second address to listen on, served the same way (a service with two ports)")
	banner := flag.String("banner", "", "line sent to each client on connect; %h stands for the host name (the container's id)")
	closeFirst := flag.Bool("close-write-first", false, "after the banner, shut the write side and read the client to EOF")
	delay := flag.Duration("delay", 0, "wait this long before listening (a slow-starting service)")
	exitAfter := flag.Duration("exit-after", 0, "exit this long after start, listening or not (0: never)")
	exitCode := flag.Int("exit-code", 3, "exit code used by -exit-after")
	commands := flag.Bool("commands", false, "answer the lines \"ip\" (the container's addresses), \"route\" (whether it has a default route) and \"dial HOST:PORT\" (connected, or failed: why) instead of echoing them: a stand-in for a player's shell in isolation tests")
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
	host, _ := os.Hostname()
	line := strings.ReplaceAll(*banner, "%h", host)
	accept := func(addr string) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			log.Fatalf("listen: %v", err)
		}
		log.Printf("listening on %s", ln.Addr())
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					log.Fatalf("accept: %v", err)
				}
				if *commands {
					go serveCommands(c, line)
					continue
				}
				go serve(c.(*net.TCPConn), line, *closeFirst)
			}
		}()
	}
	accept(*listen)
	if *also != "" {
		accept(*also)
	}
	select {}
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

// serveCommands answers "ip" and "dial HOST:PORT" lines; other lines are
// echoed.
func serveCommands(c net.Conn, banner string) {
	defer c.Close()
	if banner != "" {
		fmt.Fprintln(c, banner)
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		switch cmd {
		case "ip":
			fmt.Fprintln(c, strings.Join(addrs(), " "))
		case "route":
			fmt.Fprintln(c, defaultRoute())
		case "dial":
			d, err := net.DialTimeout("tcp", arg, 2*time.Second)
			if err != nil {
				fmt.Fprintln(c, "failed:", err)
				continue
			}
			d.Close()
			fmt.Fprintln(c, "connected")
		default:
			fmt.Fprintln(c, sc.Text())
		}
	}
}

// addrs returns the container's IPv4 addresses but loopback.
func addrs() []string {
	var out []string
	as, _ := net.InterfaceAddrs()
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			out = append(out, n.IP.String())
		}
	}
	return out
}

// defaultRoute says whether the kernel has a default IPv4 route, from
// /proc/net/route: "default" or "no default route". Nothing is sent.
func defaultRoute() string {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return "unknown: " + err.Error()
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 2 && f[1] == "00000000" {
			return "default"
		}
	}
	return "no default route"
}
