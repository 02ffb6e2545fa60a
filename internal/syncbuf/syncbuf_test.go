package syncbuf_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/natspipe/natspipe/internal/syncbuf"
)

func TestConcurrentWrites(t *testing.T) {
	var b syncbuf.Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				fmt.Fprintf(&b, "%d", i)
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if n := len(b.String()); n != 800 {
		t.Fatalf("%d bytes written, want 800", n)
	}
}

func ExampleBuffer() {
	var out syncbuf.Buffer
	fmt.Fprint(&out, "ready")
	fmt.Println(out.String())
	// Output: ready
}
