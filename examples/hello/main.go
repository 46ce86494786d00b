// Command hello is the tiny web service the example pipeline gates: it greets by name.
package main

import (
	"flag"
	"log"
	"net/http"

	"example.com/hello/greet"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "address to serve on")
	flag.Parse()
	log.Printf("hello: serving on http://%s", *listen)
	if err := http.ListenAndServe(*listen, greet.Handler()); err != nil {
		log.Fatal(err)
	}
}
