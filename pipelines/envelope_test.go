package pipelines

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func sampleEnvelope() Envelope {
	return Envelope{
		ID: "abcdefghijklmnopqrstuv", Seq: 42, Sent: 1_700_000_000_000_000_000,
		Stages: []StageRecord{
			{Stage: 1, Worker: "w1", Arrived: 10, Started: 11, Finished: 20},
			{Stage: 2, Worker: "", Arrived: 21, Started: 30, Finished: 70},
		},
		Payload: []byte("hello"),
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	e := sampleEnvelope()
	b, err := e.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != e.EncodedLen() {
		t.Errorf("encoded %d bytes, EncodedLen says %d", len(b), e.EncodedLen())
	}
	var got Envelope
	if err := got.Decode(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, e)
	}
}

func TestEnvelopeDecodeRejects(t *testing.T) {
	e := sampleEnvelope()
	good, _ := e.Append(nil)
	// Every proper prefix is truncated or not an envelope, never accepted.
	for n := 0; n < len(good); n++ {
		var d Envelope
		err := d.Decode(good[:n])
		if err == nil {
			t.Fatalf("prefix of %d bytes accepted", n)
		}
		if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrNotEnvelope) {
			t.Errorf("prefix of %d bytes: %v, want truncated or not-an-envelope", n, err)
		}
	}
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"json", []byte(`{"id":"x"}`), ErrNotEnvelope},
		{"version", mod(func(b []byte) []byte { b[2] = 9; return b }), ErrVersion},
		{"flags", mod(func(b []byte) []byte { b[3] = 1; return b }), ErrMalformed},
		{"trailing", append(bytes.Clone(good), 0), ErrMalformed},
		{"empty id", mod(func(b []byte) []byte { b[20] = 0; return b }), ErrMalformed},
		{"stage order", mod(func(b []byte) []byte { b[headerLen+22+1] = 2; return b }), ErrMalformed},
	}
	for _, c := range cases {
		var d Envelope
		if err := d.Decode(c.data); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestEnvelopeAppendRejects(t *testing.T) {
	e := sampleEnvelope()
	e.ID = ""
	if _, err := e.Append(nil); err == nil {
		t.Error("empty ID encoded")
	}
	e = sampleEnvelope()
	e.Stages[1].Stage = 3
	if _, err := e.Append(nil); err == nil {
		t.Error("out-of-order stage encoded")
	}
}

func FuzzEnvelopeDecode(f *testing.F) {
	e := sampleEnvelope()
	good, _ := e.Append(nil)
	f.Add(good)
	f.Add([]byte("NP"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d Envelope
		if err := d.Decode(data); err != nil {
			return
		}
		// Whatever decodes re-encodes to the same bytes.
		b, err := d.Append(nil)
		if err != nil {
			t.Fatalf("decoded envelope does not encode: %v", err)
		}
		if !bytes.Equal(b, data) {
			t.Fatalf("re-encoding differs")
		}
	})
}
