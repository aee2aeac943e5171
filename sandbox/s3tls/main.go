// Command s3tls serves gofakes3 over TLS for the local platform: the S3-compatible store reached
// by a host name and verified with the platform's own CA, as a team's real S3 endpoint would be.
//
// It is gofakes3's own bolt backend and S3 handler; the only addition is ListenAndServeTLS.
package main

import (
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3bolt"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:39443", "host:port to listen on")
	db := flag.String("bolt.db", "data.db", "bolt file that keeps the objects")
	bucket := flag.String("bucket", "", "bucket created at start unless it exists")
	cert := flag.String("cert", "", "PEM server certificate")
	key := flag.String("key", "", "PEM private key of -cert")
	flag.Parse()
	if *cert == "" || *key == "" {
		log.Fatal("s3tls: -cert and -key are required")
	}

	backend, err := s3bolt.NewFile(*db)
	if err != nil {
		log.Fatalf("s3tls: open %s: %v", *db, err)
	}
	if *bucket != "" {
		if err := backend.CreateBucket(*bucket); err != nil && !gofakes3.IsAlreadyExists(err) {
			log.Fatalf("s3tls: create bucket %q: %v", *bucket, err)
		}
	}
	faker := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog()))
	srv := &http.Server{
		Addr:              *addr,
		Handler:           faker.Server(),
		ReadHeaderTimeout: 30 * time.Second,
	}
	log.Printf("s3tls: serving https on %s", *addr)
	log.Fatal(srv.ListenAndServeTLS(*cert, *key))
}
