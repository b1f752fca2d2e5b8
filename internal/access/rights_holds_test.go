package access

import "testing"

// TestHoldsAny: a right on any topic counts; another right does not;
// authentication off holds everything.
func TestHoldsAny(t *testing.T) {
	gs, err := ParseGrants("produce:orders consume:events.*")
	if err != nil {
		t.Fatal(err)
	}
	p := &Principal{Name: "p", Method: "token", Grants: gs}
	if !p.HoldsAny(RightConsume) || !p.HoldsAny(RightProduce) || p.HoldsAny(RightAdmin) {
		t.Fatalf("grants %v: consume %v produce %v admin %v", gs, p.HoldsAny(RightConsume), p.HoldsAny(RightProduce), p.HoldsAny(RightAdmin))
	}
	if !Anonymous().HoldsAny(RightAdmin) {
		t.Fatal("anonymous (authentication off) must hold every right")
	}
	if (&Principal{Name: "none"}).HoldsAny(RightConsume) {
		t.Fatal("a principal without grants holds nothing")
	}
}
