// A moby/spdystream peer (the library kubelet and kubectl use) for crust-proto's
// SPDY interop tests: `client ADDR` acts like kubectl exec (error/stdin/stdout
// streams, 3 MiB echoed through stdin->stdout, no flow control); `server ADDR`
// mirrors every stream back. See ../../interop_tests.rs.
package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"

	"github.com/moby/spdystream"
)

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7 % 251)
	}
	return b
}

func must(err error) {
	if err != nil {
		fmt.Println("FAIL", err)
		os.Exit(1)
	}
}

func client(addr string) {
	conn, err := net.Dial("tcp", addr)
	must(err)
	sc, err := spdystream.NewConnection(conn, false)
	must(err)
	go sc.Serve(spdystream.NoOpStreamHandler)
	open := func(t string) *spdystream.Stream {
		h := http.Header{}
		h.Set("streamType", t)
		s, err := sc.CreateStream(h, nil, false)
		must(err)
		must(s.Wait())
		return s
	}
	es := open("error")
	in := open("stdin")
	out := open("stdout")
	data := pattern(3 << 20)
	go func() {
		_, err := in.Write(data)
		must(err)
		must(in.Close())
	}()
	got, err := io.ReadAll(out)
	must(err)
	if !bytes.Equal(got, data) {
		must(fmt.Errorf("stdout mismatch: %d bytes", len(got)))
	}
	status, err := io.ReadAll(es)
	must(err)
	fmt.Printf("OK client: echoed %d bytes, status %q\n", len(got), status)
	sc.Close()
}

func server(addr string) {
	l, err := net.Listen("tcp", addr)
	must(err)
	fmt.Println("LISTENING")
	conn, err := l.Accept()
	must(err)
	sc, err := spdystream.NewConnection(conn, true)
	must(err)
	sc.Serve(spdystream.MirrorStreamHandler)
	fmt.Println("OK server: connection done")
}

func main() {
	if os.Args[1] == "client" {
		client(os.Args[2])
	} else {
		server(os.Args[2])
	}
}
