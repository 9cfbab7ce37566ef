package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
)

// The API serves at most MaxConnections at once: many clients, each on a
// connection of its own, never see more than that many handlers running,
// and every one of them is served in the end. Each handler stays until
// maxConns-1 more have come in, so that without a cap many would pile up;
// with it, the first in can always leave.
func TestMaxConnections(t *testing.T) {
	const maxConns, clients = 3, 48
	var (
		mu                  sync.Mutex
		arrived             = sync.NewCond(&mu)
		entered, open, peak int
	)
	a, _ := newAPI(fullToken)
	a.MaxConnections = maxConns
	a.Metrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		entered++
		me := entered
		open++
		peak = max(peak, open)
		arrived.Broadcast()
		for entered < min(me+maxConns-1, clients) {
			arrived.Wait()
		}
		open--
		mu.Unlock()
		fmt.Fprintln(w, "ok")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go a.Serve(ln)
	defer a.Shutdown(context.Background())
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/metrics", nil)
			req.Header.Set("Authorization", bearer(fullToken))
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- errors.New(resp.Status)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if peak > maxConns {
		t.Fatalf("%d connections served at once; want at most %d", peak, maxConns)
	}
}

// A slot comes back when its connection closes (once, however often it
// is closed), and Close wakes an Accept waiting for a slot.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := limit(inner, 1)
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	first.Close()
	first.Close()
	second, err := ln.Accept() // the slot first gave back
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ln.slots); n != 1 {
		t.Fatalf("%d slots taken with one connection open; want 1", n)
	}
	waiting := make(chan error, 1)
	go func() {
		c, err := ln.Accept() // no slot: waits, although a client is queued
		if err == nil {
			c.Close()
		}
		waiting <- err
	}()
	ln.Close()
	if err := <-waiting; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept waiting for a slot, after Close: %v; want net.ErrClosed", err)
	}
	second.Close()
}
