package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// pair returns the two ends of a real loopback TCP connection.
func pair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-acc
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// setup returns the client's end, the upstream's end, and Pipe's result.
func setup(t *testing.T, ctx context.Context, opt Options) (client, upstream *net.TCPConn, res <-chan Stats) {
	client, gangerClient := pair(t)
	gangerUp, upstream := pair(t)
	ch := make(chan Stats, 1)
	go func() { ch <- Pipe(ctx, gangerClient, gangerUp, opt) }()
	return client, upstream, ch
}

func wait(t *testing.T, res <-chan Stats) Stats {
	t.Helper()
	select {
	case st := <-res:
		return st
	case <-time.After(30 * time.Second):
		t.Fatal("pipe did not end")
		return Stats{}
	}
}

func TestHalfCloseClientFirst(t *testing.T) {
	client, upstream, res := setup(t, context.Background(), Options{})
	data := make([]byte, 4<<20)
	rand.Read(data)
	go func() {
		client.Write(data)
		client.CloseWrite()
	}()
	got, err := io.ReadAll(upstream) // EOF arrives after every byte
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("upstream got %d bytes, %v; want %d", len(got), err, len(data))
	}
	// The other direction still works after the client's EOF.
	reply := []byte("reply after your EOF")
	upstream.Write(reply)
	upstream.CloseWrite()
	back, err := io.ReadAll(client)
	if err != nil || !bytes.Equal(back, reply) {
		t.Fatalf("client got %q, %v; want %q", back, err, reply)
	}
	st := wait(t, res)
	if st.Outcome != Closed || st.In != int64(len(data)) || st.Out != int64(len(reply)) {
		t.Fatalf("got %+v; want closed, in %d, out %d", st, len(data), len(reply))
	}
}

func TestHalfCloseUpstreamFirst(t *testing.T) {
	client, upstream, res := setup(t, context.Background(), Options{})
	upstream.Write([]byte("bye"))
	upstream.CloseWrite()
	if got, _ := io.ReadAll(client); string(got) != "bye" {
		t.Fatalf("client got %q; want bye then EOF", got)
	}
	data := make([]byte, 1<<20)
	go func() {
		client.Write(data)
		client.CloseWrite()
	}()
	got, err := io.ReadAll(upstream)
	if err != nil || len(got) != len(data) {
		t.Fatalf("upstream got %d bytes, %v, after its own EOF; want %d", len(got), err, len(data))
	}
	if st := wait(t, res); st.Outcome != Closed {
		t.Fatalf("got %+v", st)
	}
}

func TestResetEndsBoth(t *testing.T) {
	client, upstream, res := setup(t, context.Background(), Options{})
	upstream.SetLinger(0)
	upstream.Close() // RST
	client.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(client); err != nil {
		t.Fatalf("client read: %v", err)
	}
	if st := wait(t, res); st.Outcome != Reset && st.Outcome != Closed {
		t.Fatalf("got %+v; want reset", st)
	}
}

func TestIdle(t *testing.T) {
	client, _, res := setup(t, context.Background(), Options{Idle: 200 * time.Millisecond})
	client.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(client); err != nil {
		t.Fatalf("client not closed: %v", err)
	}
	if st := wait(t, res); st.Outcome != Idle {
		t.Fatalf("got %+v; want idle", st)
	}
}

// Bytes flowing in one direction only keep a pipe from being idle.
func TestOneWayTrafficIsNotIdle(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	client, upstream, res := setup(t, ctx, Options{Idle: 300 * time.Millisecond})
	go io.Copy(io.Discard, client)
	for range 15 { // 1.5s of downstream-only traffic: five idle periods
		if _, err := upstream.Write([]byte("tick")); err != nil {
			t.Fatalf("pipe closed under traffic: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if st := wait(t, res); st.Outcome != Canceled {
		t.Fatalf("got %+v; want it to run until cancelled", st)
	}
}

func TestMaxTime(t *testing.T) {
	_, _, res := setup(t, context.Background(), Options{Max: 200 * time.Millisecond})
	if st := wait(t, res); st.Outcome != MaxTime {
		t.Fatalf("got %+v; want timeout", st)
	}
}

// A client that sent EOF cannot hold the pipe through an upstream that
// never closes: HalfClosed ends it. An upstream that keeps talking after
// the client's EOF is not cut, and without HalfClosed nothing ends it.
func TestHalfClosed(t *testing.T) {
	t.Run("silent upstream", func(t *testing.T) {
		client, upstream, res := setup(t, context.Background(), Options{HalfClosed: 200 * time.Millisecond})
		client.Write([]byte("request"))
		client.CloseWrite()
		got, _ := io.ReadAll(upstream) // the request, then the client's EOF
		if string(got) != "request" {
			t.Fatalf("upstream got %q", got)
		}
		if st := wait(t, res); st.Outcome != Idle || st.In != 7 {
			t.Fatalf("got %+v; want idle after 7 bytes in", st)
		}
	})
	t.Run("talking upstream", func(t *testing.T) {
		client, upstream, res := setup(t, context.Background(), Options{HalfClosed: time.Second})
		client.CloseWrite()
		io.ReadAll(upstream)
		// Twice HalfClosed of replies, each well within it.
		for range 20 {
			if _, err := upstream.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		upstream.CloseWrite()
		back, _ := io.ReadAll(client)
		if st := wait(t, res); st.Outcome != Closed || len(back) != 20 {
			t.Fatalf("got %+v and %d bytes back; want closed with 20", st, len(back))
		}
	})
	t.Run("not set", func(t *testing.T) {
		client, upstream, res := setup(t, context.Background(), Options{})
		client.CloseWrite()
		io.ReadAll(upstream)
		select {
		case st := <-res:
			t.Fatalf("pipe ended without a limit: %+v", st)
		case <-time.After(500 * time.Millisecond):
		}
		upstream.CloseWrite()
		if st := wait(t, res); st.Outcome != Closed {
			t.Fatalf("got %+v; want closed", st)
		}
	})
}

// Ending runs before the client can see the end, however it comes: the
// upstream's EOF passed on, or a close.
func TestEndingBeforeTheClientSeesIt(t *testing.T) {
	for _, how := range []string{"upstream EOF", "canceled"} {
		t.Run(how, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var ended atomic.Bool
			client, upstream, res := setup(t, ctx, Options{Ending: func() { ended.Store(true) }})
			if how == "upstream EOF" {
				upstream.CloseWrite()
			} else {
				cancel()
			}
			client.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.ReadAll(client); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatal(err)
			}
			if !ended.Load() {
				t.Fatal("the client saw the end before Ending ran")
			}
			client.Close()
			upstream.Close()
			wait(t, res)
		})
	}
}
