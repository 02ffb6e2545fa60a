package natsserver_test

import (
	"fmt"
	"log"
	"time"

	"github.com/natspipe/natspipe/internal/natsserver"
	"github.com/natspipe/natspipe/pipelines/natsconn"
)

// Embed starts a NATS server inside the process on a random loopback port,
// as httptest.NewServer starts an HTTP server; connect with its Conn and
// Close it when done. (Tests use natstest.Start, which closes it in the
// test's Cleanup and honours NATS_URL.)
func ExampleEmbed() {
	srv, err := natsserver.Embed(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	nc, err := srv.Conn.Connect("example")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("greeting")
	if err != nil {
		log.Fatal(err)
	}
	if err := nc.Publish("greeting", []byte("hello")); err != nil {
		log.Fatal(err)
	}
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s on %s (external: %v)\n", msg.Data, msg.Subject, srv.External)
	// Output: hello on greeting (external: false)
}

// Open gives the server a natsconn.Config names, after checking that it
// answers, or an embedded one when the Config names none: what
// "natspipe run" does with -url (or NATS_URL) and without.
func ExampleOpen() {
	embedded, err := natsserver.Open(natsconn.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer embedded.Close()

	named, err := natsserver.Open(natsconn.Config{URL: embedded.URL})
	if err != nil {
		log.Fatal(err)
	}
	defer named.Close() // does nothing: natspipe did not start it

	fmt.Println("no URL, external:", embedded.External)
	fmt.Println("a URL, external:", named.External, "same version:", named.Version == embedded.Version)
	// Output:
	// no URL, external: false
	// a URL, external: true same version: true
}
