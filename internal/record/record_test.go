package record

import "testing"

func TestHeaderFindsTheFirstOfAName(t *testing.T) {
	r := Record{Headers: []Header{
		{Key: "a", Value: []byte("1")},
		{Key: HeaderFields, Value: []byte("first")},
		{Key: HeaderFields, Value: []byte("second")},
		{Key: "empty", Value: nil},
	}}
	if v, ok := r.Header(HeaderFields); !ok || string(v) != "first" {
		t.Fatalf("Header(%s) = %q, %v", HeaderFields, v, ok)
	}
	if v, ok := r.Header("empty"); !ok || v != nil {
		t.Fatalf("a present header with a nil value: %q, %v", v, ok)
	}
	if v, ok := r.Header("missing"); ok || v != nil {
		t.Fatalf("missing header: %q, %v", v, ok)
	}
	if _, ok := (Record{}).Header("a"); ok {
		t.Fatal("a record without headers has one")
	}
}
