// Package pipelines is the shared model of a staged pipeline: its spec
// (stages, durations, work model, payload), the work a stage does, the
// envelope a message travels in, the stage step every variant runs, and the
// runner that drives a closed window of messages through a variant and
// measures it.
//
// Variants (pipelines/p0 .. p4) import this package; it imports none of them.
package pipelines
