// A Go web server for the `go` template: Slipway runs `go build -o app .`, then `./app` with PORT set.
package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	// Inside its sandbox the app listens on every address; HOST narrows that when running by hand.
	host := os.Getenv("HOST")

	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "Hello from Slipway (Go)")
	})

	addr := net.JoinHostPort(host, port)
	log.Printf("listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}
