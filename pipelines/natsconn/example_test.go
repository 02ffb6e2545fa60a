package natsconn_test

import (
	"fmt"

	"github.com/natspipe/natspipe/pipelines/natsconn"
)

// Mask hides the secret part of each server URL's user info, so a URL can
// be printed or logged; a URL without credentials is left as it is.
func ExampleMask() {
	fmt.Println(natsconn.Mask("nats://alice:s3cret@nats.example.com:4222"))
	fmt.Println(natsconn.Mask("nats://tok3n@nats.example.com:4222"))
	fmt.Println(natsconn.Mask("nats://a:pw@one:4222,nats://two:4222"))
	fmt.Println(natsconn.Mask("nats://127.0.0.1:4222"))
	// Output:
	// nats://alice:***@nats.example.com:4222
	// nats://***@nats.example.com:4222
	// nats://a:***@one:4222,nats://two:4222
	// nats://127.0.0.1:4222
}

// A Config prints with its secrets masked, whichever verb is used.
func ExampleConfig_String() {
	c := natsconn.Config{URL: "nats://alice:s3cret@nats.example.com:4222"}
	fmt.Println(c)
	fmt.Printf("%#v\n", c)
	// Output:
	// nats://alice:***@nats.example.com:4222
	// natsconn.Config{nats://alice:***@nats.example.com:4222}
}
