package transport

import "testing"

// TestForwards checks the pairing: one registration per ID, Take hands it
// over once, Drop removes only its own registration.
func TestForwards(t *testing.T) {
	var f Forwards[*int]
	a, b := new(int), new(int)
	if !f.Expect("m.S2", a) || f.Expect("m.S2", b) {
		t.Fatal("a second registration for one ID was accepted, or the first refused")
	}
	f.Drop("m.S2", b) // not b's: stays
	if got, ok := f.Take("m.S2"); !ok || got != a {
		t.Fatalf("Take = %v, %v; want a", got, ok)
	}
	if _, ok := f.Take("m.S2"); ok {
		t.Fatal("Take handed the same registration over twice")
	}
	f.Expect("m.S3", a)
	f.Drop("m.S3", a)
	if _, ok := f.Take("m.S3"); ok {
		t.Fatal("Drop left its registration")
	}
}
