package pipelines

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Envelope format, version 1. All integers little-endian; times are stamps
// in nanoseconds (see Stamp: the host's monotonic clock by default).
//
//	offset  size  field
//	0       2     magic "NP"
//	2       1     version (1)
//	3       1     flags: bit 0 (flagDrawn) set when the stage records carry
//	              their drawn time; the other bits are reserved (0)
//	4       8     seq        uint64, the source's sequence number
//	12      8     sent       int64, when the source sent the message
//	20      1     idLen      length of the correlation ID (1..64)
//	21      idLen id         correlation ID, set at the source (S1's input)
//	.       1     nRecords   stage records present (0..MaxStages)
//	        then nRecords times:
//	        1     stage      1-based stage number; records are 1, 2, 3, ... in order
//	        1     workerLen  0..255
//	        wl    worker     which worker handled the stage
//	        8     arrived    when the stage received the message
//	        8     started    when the stage began work
//	        8     finished   when the stage ended work
//	        8     drawn      only with flagDrawn: the time the stage drew for
//	                         this message (ns; 0 for a constant stage)
//	.       4     payloadLen uint32 (0..MaxPayload)
//	.       pl    payload
//
// The message ends exactly after the payload; trailing bytes are an error.
const (
	EnvelopeVersion = 1
	// MaxPayload bounds the payload so an envelope fits NATS's default 1 MiB.
	MaxPayload = 900 << 10
	maxIDLen   = 64
	headerLen  = 21
	// flagDrawn: every stage record carries its drawn time.
	flagDrawn = 0x01
)

var envelopeMagic = [2]byte{'N', 'P'}

// Errors a decoder returns, wrapped with detail; test with errors.Is.
var (
	ErrNotEnvelope = errors.New("not a natspipe envelope")
	ErrTruncated   = errors.New("truncated envelope")
	ErrVersion     = errors.New("unsupported envelope version")
	ErrMalformed   = errors.New("malformed envelope")
)

// StageRecord is what one stage stamped on a message.
type StageRecord struct {
	Stage    int    // 1-based stage number
	Worker   string // worker that handled it
	Arrived  int64  // stamp (see Stamp): received by the stage
	Started  int64  // stamp (see Stamp): work began
	Finished int64  // stamp (see Stamp): work ended
	// Drawn is the time a stage with a service-time distribution drew for
	// this message, ns; 0 for a constant stage (its time is the spec's).
	Drawn int64
}

// Envelope is a message as it travels through a pipeline.
type Envelope struct {
	ID      string // correlation ID
	Seq     uint64 // source sequence number
	Sent    int64  // stamp: when the source sent it
	Stages  []StageRecord
	Payload []byte
}

// EncodedLen is the size of e's encoding.
func (e *Envelope) EncodedLen() int {
	n := headerLen + len(e.ID) + 1 + 4 + len(e.Payload)
	rec := 24
	if e.drawn() {
		rec = 32
	}
	for _, r := range e.Stages {
		n += 2 + len(r.Worker) + rec
	}
	return n
}

// drawn reports whether any stage record carries a drawn time: then all
// of them are encoded with one (flagDrawn).
func (e *Envelope) drawn() bool {
	for _, r := range e.Stages {
		if r.Drawn != 0 {
			return true
		}
	}
	return false
}

// Append appends e's encoding to b.
func (e *Envelope) Append(b []byte) ([]byte, error) {
	if len(e.ID) == 0 || len(e.ID) > maxIDLen {
		return b, fmt.Errorf("encode envelope: correlation ID length %d out of range [1, %d]", len(e.ID), maxIDLen)
	}
	if len(e.Stages) > MaxStages {
		return b, fmt.Errorf("encode envelope: %d stage records, at most %d", len(e.Stages), MaxStages)
	}
	if len(e.Payload) > MaxPayload {
		return b, fmt.Errorf("encode envelope: payload %d bytes, at most %d", len(e.Payload), MaxPayload)
	}
	b = slices.Grow(b, e.EncodedLen())
	var flags byte
	drawn := e.drawn()
	if drawn {
		flags = flagDrawn
	}
	b = append(b, envelopeMagic[0], envelopeMagic[1], EnvelopeVersion, flags)
	b = binary.LittleEndian.AppendUint64(b, e.Seq)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.Sent))
	b = append(b, byte(len(e.ID)))
	b = append(b, e.ID...)
	b = append(b, byte(len(e.Stages)))
	for i, r := range e.Stages {
		if r.Stage != i+1 {
			return b, fmt.Errorf("encode envelope: record %d is for stage %d", i+1, r.Stage)
		}
		if len(r.Worker) > 255 {
			return b, fmt.Errorf("encode envelope: worker name %d bytes, at most 255", len(r.Worker))
		}
		b = append(b, byte(r.Stage), byte(len(r.Worker)))
		b = append(b, r.Worker...)
		b = binary.LittleEndian.AppendUint64(b, uint64(r.Arrived))
		b = binary.LittleEndian.AppendUint64(b, uint64(r.Started))
		b = binary.LittleEndian.AppendUint64(b, uint64(r.Finished))
		if drawn {
			if r.Drawn < 0 {
				return b, fmt.Errorf("encode envelope: stage %d drew a negative time %d", r.Stage, r.Drawn)
			}
			b = binary.LittleEndian.AppendUint64(b, uint64(r.Drawn))
		}
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(e.Payload)))
	b = append(b, e.Payload...)
	return b, nil
}

// Decode parses data into e, validating it. e's Stages slice is reused; e.Payload
// aliases data (copy it to keep it past data's life). On error e is undefined.
func (e *Envelope) Decode(data []byte) error {
	if len(data) < 4 {
		if len(data) >= 2 && data[0] == envelopeMagic[0] && data[1] == envelopeMagic[1] {
			return fmt.Errorf("%w: %d bytes, header needs %d", ErrTruncated, len(data), headerLen)
		}
		return fmt.Errorf("%w: %d bytes", ErrNotEnvelope, len(data))
	}
	if data[0] != envelopeMagic[0] || data[1] != envelopeMagic[1] {
		return fmt.Errorf("%w: starts with %q", ErrNotEnvelope, data[:2])
	}
	if data[2] != EnvelopeVersion {
		return fmt.Errorf("%w: %d (this build reads %d)", ErrVersion, data[2], EnvelopeVersion)
	}
	if data[3]&^flagDrawn != 0 {
		return fmt.Errorf("%w: reserved flags %#x set", ErrMalformed, data[3]&^flagDrawn)
	}
	rec := 24
	if data[3]&flagDrawn != 0 {
		rec = 32
	}
	if len(data) < headerLen {
		return fmt.Errorf("%w: %d bytes, header needs %d", ErrTruncated, len(data), headerLen)
	}
	e.Seq = binary.LittleEndian.Uint64(data[4:])
	e.Sent = int64(binary.LittleEndian.Uint64(data[12:]))
	idLen := int(data[20])
	if idLen == 0 || idLen > maxIDLen {
		return fmt.Errorf("%w: correlation ID length %d", ErrMalformed, idLen)
	}
	p := headerLen
	if len(data) < p+idLen+1 {
		return fmt.Errorf("%w: correlation ID needs %d bytes, %d left", ErrTruncated, idLen+1, len(data)-p)
	}
	e.ID = string(data[p : p+idLen])
	p += idLen
	n := int(data[p])
	p++
	if n > MaxStages {
		return fmt.Errorf("%w: %d stage records, at most %d", ErrMalformed, n, MaxStages)
	}
	e.Stages = e.Stages[:0]
	for i := 0; i < n; i++ {
		if len(data) < p+2 {
			return fmt.Errorf("%w: stage record %d", ErrTruncated, i+1)
		}
		stage, wl := int(data[p]), int(data[p+1])
		if stage != i+1 {
			return fmt.Errorf("%w: stage record %d is for stage %d", ErrMalformed, i+1, stage)
		}
		p += 2
		if len(data) < p+wl+rec {
			return fmt.Errorf("%w: stage record %d", ErrTruncated, i+1)
		}
		r := StageRecord{Stage: stage}
		r.Worker = string(data[p : p+wl])
		p += wl
		r.Arrived = int64(binary.LittleEndian.Uint64(data[p:]))
		r.Started = int64(binary.LittleEndian.Uint64(data[p+8:]))
		r.Finished = int64(binary.LittleEndian.Uint64(data[p+16:]))
		if rec == 32 {
			r.Drawn = int64(binary.LittleEndian.Uint64(data[p+24:]))
			if r.Drawn < 0 {
				return fmt.Errorf("%w: stage %d drew a negative time", ErrMalformed, stage)
			}
		}
		p += rec
		if r.Started < r.Arrived || r.Finished < r.Started {
			return fmt.Errorf("%w: stage %d times out of order (arrived %d, started %d, finished %d)",
				ErrMalformed, stage, r.Arrived, r.Started, r.Finished)
		}
		e.Stages = append(e.Stages, r)
	}
	if len(data) < p+4 {
		return fmt.Errorf("%w: payload length missing", ErrTruncated)
	}
	pl := int(binary.LittleEndian.Uint32(data[p:]))
	p += 4
	if pl > MaxPayload {
		return fmt.Errorf("%w: payload length %d, at most %d", ErrMalformed, pl, MaxPayload)
	}
	if len(data) < p+pl {
		return fmt.Errorf("%w: payload needs %d bytes, %d left", ErrTruncated, pl, len(data)-p)
	}
	if len(data) > p+pl {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(data)-p-pl)
	}
	e.Payload = data[p : p+pl]
	return nil
}
