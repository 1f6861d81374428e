package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"

	"golang.org/x/net/http2"
)

// BenchmarkTunnelThroughput compares bulk transfer through a CONNECT
// tunnel with a direct connection to the same sink, in the same run.
func BenchmarkTunnelThroughput(b *testing.B) {
	env := newConnectEnv(b, "")
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(sink.Addr().String())
	chunk := make([]byte, 256<<10)
	const perConn = 64 << 20 // bytes sent per connection
	run := func(b *testing.B, dial func() net.Conn) {
		b.SetBytes(int64(len(chunk)))
		b.ResetTimer()
		var c net.Conn
		sent := 0
		for b.Loop() {
			if c == nil || sent >= perConn {
				if c != nil {
					c.Close()
				}
				b.StopTimer()
				c, sent = dial(), 0
				b.StartTimer()
			}
			if _, err := c.Write(chunk); err != nil {
				b.Fatal(err)
			}
			sent += len(chunk)
		}
		if c != nil {
			c.Close()
		}
	}
	b.Run("direct", func(b *testing.B) {
		run(b, func() net.Conn {
			c, err := net.Dial("tcp", sink.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			return c
		})
	})
	b.Run("tunnel", func(b *testing.B) {
		run(b, func() net.Conn {
			c, err := net.Dial("tcp", env.p.addr)
			if err != nil {
				b.Fatal(err)
			}
			fmt.Fprintf(c, "CONNECT tunnel.test:%s HTTP/1.1\r\nHost: tunnel.test\r\n\r\n", port)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
			if err != nil || resp.StatusCode != 200 {
				b.Fatalf("CONNECT: %v %v", resp, err)
			}
			return c
		})
	})
}

// BenchmarkBumpH1 measures keep-alive requests inside one bumped HTTP/1.1
// session (client → proxy TLS → pipeline → upstream TLS pool → origin).
func BenchmarkBumpH1(b *testing.B) {
	env := newConnectEnv(b, "")
	authority := "example.com:" + env.originPort()
	const conns = 4
	type session struct {
		tc *tls.Conn
		br *bufio.Reader
	}
	pool := make(chan session, conns)
	for range conns {
		tc := env.bumpTLS(b, authority, "http/1.1")
		pool <- session{tc, bufio.NewReader(tc)}
	}
	req := fmt.Sprintf("GET /ok/bench HTTP/1.1\r\nHost: %s\r\n\r\n", authority)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		s := <-pool
		defer func() { pool <- s }()
		for pb.Next() {
			io.WriteString(s.tc, req)
			resp, err := http.ReadResponse(s.br, nil)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkBumpH2 measures concurrent streams on one bumped HTTP/2
// session.
func BenchmarkBumpH2(b *testing.B) {
	env := newConnectEnv(b, "")
	authority := "example.com:" + env.originPort()
	tc := env.bumpTLS(b, authority, "h2")
	cc, err := (&http2.Transport{}).NewClientConn(tc)
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", "https://"+authority+"/ok/bench", nil)
			resp, err := cc.RoundTrip(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
