// qad_go_client: completes a QUIC handshake with ALPN /iroh-qad/0 against a QAD server using
// Debian's quic-go 0.29 and closes with application code 1 "finished". quic-go cannot negotiate
// the address-discovery transport parameter, so this proves interoperability of the handshake
// only. Exit code 0 = handshake completed.
//
// Build offline: GO111MODULE=off GOPATH=/usr/share/gocode go build -o qad_go_client main.go
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/lucas-clemente/quic-go"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7842", "QAD server address")
	caFile := flag.String("ca", "", "PEM certificate to trust (the server's self-signed one)")
	serverName := flag.String("sni", "localhost", "TLS server name")
	alpn := flag.String("alpn", "/iroh-qad/0", "ALPN to offer")
	hold := flag.Duration("hold", 0, "keep the connection open this long before closing")
	flag.Parse()

	tlsConf := &tls.Config{ServerName: *serverName, NextProtos: []string{*alpn}}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "read ca:", err)
			os.Exit(2)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fmt.Fprintln(os.Stderr, "no certificate in", *caFile)
			os.Exit(2)
		}
		tlsConf.RootCAs = pool
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := quic.DialAddrContext(ctx, *addr, tlsConf, &quic.Config{
		HandshakeIdleTimeout: 5 * time.Second,
		MaxIdleTimeout:       35 * time.Second,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "handshake failed:", err)
		os.Exit(1)
	}
	state := conn.ConnectionState().TLS
	fmt.Printf("handshake ok alpn=%s version=%x\n", state.NegotiatedProtocol, state.Version)
	if *hold > 0 {
		time.Sleep(*hold)
	}
	if err := conn.CloseWithError(1, "finished"); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
		os.Exit(1)
	}
}
