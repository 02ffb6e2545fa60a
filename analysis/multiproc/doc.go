// Package multiproc holds only tests: package analysis run on real traces of
// the multi-process variants (P3's one worker per stage, P4's allocations).
// They live apart from package analysis's own tests because their test
// binary doubles as the worker processes (worker.Dispatch in TestMain).
package multiproc
