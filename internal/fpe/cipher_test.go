package fpe

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// testKey is a fixed AES-256 key for the pure tests.
func testKey(b byte) []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

func mustCipher(t testing.TB, key []byte, domain string, version int) *Cipher {
	t.Helper()
	c, err := NewCipher(key, domain, version)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestNISTFF1Samples runs the radix-10 FF1 samples of NIST SP 800-38G
// (samples 1, 2 with AES-128; 4, 5 with AES-192; 7, 8 with AES-256) through
// the wrapper's FF1 layer (pool, input checks).
func TestNISTFF1Samples(t *testing.T) {
	const (
		k128 = "2B7E151628AED2A6ABF7158809CF4F3C"
		k192 = k128 + "EF4359D8D580AA4F"
		k256 = k192 + "7F036D6F04FC6A94"
		tw   = "39383736353433323130"
	)
	samples := []struct {
		n              int
		key, tweak     string
		plain, ciphert string
	}{
		{1, k128, "", "0123456789", "2433477484"},
		{2, k128, tw, "0123456789", "6124200773"},
		{4, k192, "", "0123456789", "2830668132"},
		{5, k192, tw, "0123456789", "2496655549"},
		{7, k256, "", "0123456789", "6657667009"},
		{8, k256, tw, "0123456789", "1001623463"},
	}
	for _, s := range samples {
		t.Run(fmt.Sprintf("Sample%d", s.n), func(t *testing.T) {
			key, _ := hex.DecodeString(s.key)
			tweak, _ := hex.DecodeString(s.tweak)
			p, err := newFF1(key)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.crypt("encrypt", s.plain, tweak, true)
			if err != nil || got != s.ciphert {
				t.Fatalf("encrypt = %q, %v; want %q", got, err, s.ciphert)
			}
			back, err := p.crypt("decrypt", s.ciphert, tweak, false)
			if err != nil || back != s.plain {
				t.Fatalf("decrypt = %q, %v; want %q", back, err, s.plain)
			}
		})
	}
}

func TestNewCipherRefusesNonAES256Keys(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33} {
		_, err := NewCipher(make([]byte, n), "d", 1)
		if !errors.Is(err, ErrInvalidKey) {
			t.Errorf("key of %d bytes: err = %v, want ErrInvalidKey", n, err)
		}
	}
	if _, err := NewCipher(testKey(1), "d", 0); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("version 0: err = %v", err)
	}
	for _, d := range []string{"", ".x", "a|b", "a/b", "a b", strings.Repeat("a", 129)} {
		if _, err := NewCipher(testKey(1), d, 1); !errors.Is(err, ErrInvalidDomain) {
			t.Errorf("domain %q: err = %v, want ErrInvalidDomain", d, err)
		}
	}
}

func TestLuhn(t *testing.T) {
	for _, s := range []string{"4111111111111111", "79927398713", "5555555555554444", "378282246310005", "0"} {
		if !luhnValid([]byte(s)) || !Luhn(s) {
			t.Errorf("%s should be Luhn-valid", s)
		}
		if c := luhnCheckDigit([]byte(s[:len(s)-1])); c != s[len(s)-1] {
			t.Errorf("check digit of %s = %c", s, c)
		}
	}
	for _, s := range []string{"4111111111111112", "79927398710"} {
		if luhnValid([]byte(s)) || Luhn(s) {
			t.Errorf("%s should be Luhn-invalid", s)
		}
	}
	for _, s := range []string{"", "4111 1111 1111 1111", "411111111111111x", "-0"} {
		if Luhn(s) {
			t.Errorf("%q is not all digits: Luhn must be false", s)
		}
	}
}

// randomCard returns a random Luhn-valid card number of n digits, with
// separators in groups of 4 (space or hyphen) a third of the time each.
func randomCard(r *rand.Rand, n int) string {
	d := make([]byte, n)
	for i := range n - 1 {
		d[i] = byte('0' + r.IntN(10))
	}
	d[n-1] = luhnCheckDigit(d[:n-1])
	sep := [...]string{"", " ", "-"}[r.IntN(3)]
	if sep == "" {
		return string(d)
	}
	var b strings.Builder
	for i, c := range d {
		if i > 0 && i%4 == 0 {
			b.WriteString(sep)
		}
		b.WriteByte(c)
	}
	return b.String()
}

func digitsOf(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// sameShape reports whether a and b have the same length and the same
// non-digit bytes at the same positions.
func sameShape(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if isDigit(a[i]) != isDigit(b[i]) || (!isDigit(a[i]) && a[i] != b[i]) {
			return false
		}
	}
	return true
}

// roundTrips is the number of random cards per mode: 100k, or 2k with
// -short.
func roundTrips() int {
	if testing.Short() {
		return 2_000
	}
	return 100_000
}

func TestRoundTripPerMode(t *testing.T) {
	c := mustCipher(t, testKey(7), "payments.card_number", 1)
	cases := []struct {
		f            Format
		minN, maxN   int
		luhn, keepBL bool
	}{
		{Format{Mode: ModeFull}, 12, 19, true, false},
		{Format{Mode: ModeKeepBINLast4}, 16, 19, true, true},
		{Format{Mode: ModeKeepBINLast4NoLuhn}, 16, 19, false, true},
		{Format{Mode: ModeDigits}, 12, 19, false, false},
	}
	n := roundTrips()
	for _, tc := range cases {
		t.Run(string(tc.f.Mode), func(t *testing.T) {
			t.Parallel()
			workers := runtime.GOMAXPROCS(0)
			var (
				failures  atomic.Int64
				unchanged atomic.Int64
				luhnOut   atomic.Int64
				wg        sync.WaitGroup
			)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(w), 42))
					for i := w; i < n; i += workers {
						in := randomCard(r, tc.minN+r.IntN(tc.maxN-tc.minN+1))
						out, err := c.Encrypt(tc.f, in)
						if err != nil {
							t.Errorf("encrypt: %v", err)
							failures.Add(1)
							return
						}
						di, do := digitsOf(in), digitsOf(out)
						ok := sameShape(in, out)
						if tc.luhn && !luhnValid([]byte(do)) {
							ok = false
						}
						if tc.keepBL && (di[:6] != do[:6] || di[len(di)-4:] != do[len(do)-4:]) {
							ok = false
						}
						if luhnValid([]byte(do)) {
							luhnOut.Add(1)
						}
						if di == do {
							unchanged.Add(1)
						}
						back, err := c.Decrypt(tc.f, out)
						if err != nil || back != in || !ok {
							if failures.Add(1) < 5 {
								t.Errorf("round trip failed: shape/luhn/kept ok=%v, decrypt err=%v, equal=%v", ok, err, back == in)
							}
						}
					}
				}()
			}
			wg.Wait()
			if f := failures.Load(); f > 0 {
				t.Fatalf("%d of %d round trips failed", f, n)
			}
			t.Logf("%d cards round-tripped; %d tokens Luhn-valid; %d tokens equal to their input", n, luhnOut.Load(), unchanged.Load())
			if u := unchanged.Load(); u > int64(n/1000)+2 {
				t.Errorf("%d tokens equal their input: too many", u)
			}
		})
	}
}

func TestDigitsModeLengths(t *testing.T) {
	c := mustCipher(t, testKey(7), "ids.account", 3)
	r := rand.New(rand.NewPCG(1, 2))
	f := Format{Mode: ModeDigits}
	for n := DigitsMinDigits; n <= DigitsMaxDigits; n++ {
		for range 20 {
			d := make([]byte, n)
			for i := range d {
				d[i] = byte('0' + r.IntN(10))
			}
			in := string(d)
			out, err := c.Encrypt(f, in)
			if err != nil || len(out) != n || strings.Trim(out, "0123456789") != "" {
				t.Fatalf("n=%d: encrypt = %q, %v", n, out, err)
			}
			back, err := c.Decrypt(f, out)
			if err != nil || back != in {
				t.Fatalf("n=%d: decrypt mismatch, %v", n, err)
			}
		}
	}
	// Leading zeros are digits like any other.
	out, err := c.Encrypt(f, "000000")
	if err != nil || len(out) != 6 {
		t.Fatalf("000000 -> %q, %v", out, err)
	}
	if back, _ := c.Decrypt(f, out); back != "000000" {
		t.Fatalf("000000 did not round-trip")
	}
}

func TestKeepModesShortCards(t *testing.T) {
	c := mustCipher(t, testKey(7), "payments.card_number", 1)
	r := rand.New(rand.NewPCG(3, 4))
	for _, m := range []Mode{ModeKeepBINLast4, ModeKeepBINLast4NoLuhn} {
		for n := 12; n <= 15; n++ {
			card := randomCard(r, n)
			_, err := c.Encrypt(Format{Mode: m}, card)
			if !errors.Is(err, ErrDomainTooSmall) || Code(err) != CodeDomainTooSmall {
				t.Fatalf("%s, %d digits: err = %v, want %s", m, n, err, CodeDomainTooSmall)
			}
			if strings.Contains(err.Error(), digitsOf(card)) {
				t.Fatalf("error message contains the value")
			}
			fb := Format{Mode: m, FallbackFull: true}
			if fb.EffectiveMode(card) != ModeFull {
				t.Fatalf("EffectiveMode = %s", fb.EffectiveMode(card))
			}
			got, err := c.Encrypt(fb, card)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := c.Encrypt(Format{}, card)
			if got != want {
				t.Fatalf("fallback output differs from mode full")
			}
			back, err := c.Decrypt(fb, got)
			if err != nil || back != card {
				t.Fatalf("fallback decrypt: %v", err)
			}
		}
		// 16 digits and more: fallback does not apply.
		card := randomCard(r, 16)
		fb := Format{Mode: m, FallbackFull: true}
		if fb.EffectiveMode(card) != m {
			t.Fatalf("EffectiveMode(16 digits) = %s", fb.EffectiveMode(card))
		}
		a, _ := c.Encrypt(fb, card)
		b, _ := c.Encrypt(Format{Mode: m}, card)
		if a != b {
			t.Fatalf("fallback changed a 16-digit card")
		}
	}
}

func TestRefusals(t *testing.T) {
	c := mustCipher(t, testKey(9), "payments.card_number", 1)
	full := Format{Mode: ModeFull}
	keep := Format{Mode: ModeKeepBINLast4}
	nol := Format{Mode: ModeKeepBINLast4NoLuhn}
	dig := Format{Mode: ModeDigits}
	cases := []struct {
		name  string
		f     Format
		value string
		want  error
		code  string
	}{
		{"empty", full, "", ErrEmpty, CodeEmpty},
		{"empty digits", dig, "", ErrEmpty, CodeEmpty},
		{"letters", full, "4111abcd11111111", ErrInvalidCharacters, CodeInvalidCharacters},
		{"all letters", dig, "abcdefgh", ErrInvalidCharacters, CodeInvalidCharacters},
		{"plus sign", full, "+4111111111111111", ErrInvalidCharacters, CodeInvalidCharacters},
		{"minus sign", full, "-4111111111111111", ErrInvalidCharacters, CodeInvalidCharacters},
		{"minus sign digits", dig, "-1234567", ErrInvalidCharacters, CodeInvalidCharacters},
		{"plus sign digits", dig, "+1234567", ErrInvalidCharacters, CodeInvalidCharacters},
		{"trailing separator", full, "4111111111111111 ", ErrInvalidCharacters, CodeInvalidCharacters},
		{"double separator", full, "4111  1111 1111 1111", ErrInvalidCharacters, CodeInvalidCharacters},
		{"only separators", dig, " - ", ErrInvalidCharacters, CodeInvalidCharacters},
		{"dot", dig, "1234.5678", ErrInvalidCharacters, CodeInvalidCharacters},
		{"unicode digits", dig, "١٢٣٤٥٦٧٨", ErrInvalidCharacters, CodeInvalidCharacters},
		{"fullwidth digits", full, "４１１１１１１１１１１１１１１１", ErrInvalidCharacters, CodeInvalidCharacters},
		{"nul byte", dig, "123456\x00", ErrInvalidCharacters, CodeInvalidCharacters},
		{"card too short", full, "41111111113", ErrTooShort, CodeTooShort},
		{"card too long", full, "41111111111111111113", ErrTooLong, CodeTooLong},
		{"keep too long", keep, "4111111111111111111111", ErrTooLong, CodeTooLong},
		{"digits too short", dig, "12345", ErrTooShort, CodeTooShort},
		{"digits too short sep", dig, "12-345", ErrTooShort, CodeTooShort},
		{"digits too long", dig, strings.Repeat("7", 65), ErrTooLong, CodeTooLong},
		{"full not luhn", full, "4111111111111112", ErrNotLuhn, CodeNotLuhn},
		{"keep not luhn", keep, "4111111111111112", ErrNotLuhn, CodeNotLuhn},
		{"amex keep", keep, "378282246310005", ErrDomainTooSmall, CodeDomainTooSmall},
		{"amex keep no luhn", nol, "3782-822463-10005", ErrDomainTooSmall, CodeDomainTooSmall},
		{"unknown mode", Format{Mode: "ff3"}, "4111111111111111", ErrUnknownFormat, CodeUnknownFormat},
		{"fallback on digits", Format{Mode: ModeDigits, FallbackFull: true}, "4111111111111111", ErrUnknownFormat, CodeUnknownFormat},
	}
	for _, tc := range cases {
		for _, op := range []string{"encrypt", "decrypt"} {
			var err error
			if op == "encrypt" {
				_, err = c.Encrypt(tc.f, tc.value)
			} else {
				_, err = c.Decrypt(tc.f, tc.value)
			}
			if !errors.Is(err, tc.want) || Code(err) != tc.code {
				t.Errorf("%s %s: err = %v (code %q), want %s", op, tc.name, err, Code(err), tc.code)
				continue
			}
			var fe *Error
			if !errors.As(err, &fe) || fe.Op != op {
				t.Errorf("%s %s: not an *Error with Op %q: %#v", op, tc.name, op, err)
			}
			if d := digitsOf(tc.value); len(d) >= 4 && strings.Contains(err.Error(), d) {
				t.Errorf("%s %s: message contains the value: %v", op, tc.name, err)
			}
			if len(tc.value) >= 4 && strings.Contains(err.Error(), tc.value) {
				t.Errorf("%s %s: message contains the value: %v", op, tc.name, err)
			}
		}
	}
	// The no-Luhn keep mode and the digits mode take Luhn-invalid numbers.
	for _, f := range []Format{nol, dig} {
		out, err := c.Encrypt(f, "4111111111111112")
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if back, err := c.Decrypt(f, out); err != nil || back != "4111111111111112" {
			t.Fatalf("%s: round trip failed: %v", f, err)
		}
	}
}

func TestFF1LayerRefusesWhatCapitalOneAccepts(t *testing.T) {
	p, err := newFF1(testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []string{"12", "12345", "+123456", "-123456", "12345a", strings.Repeat("1", 65)} {
		if _, err := p.crypt("encrypt", x, nil, true); Code(err) == "" {
			t.Errorf("%q accepted by the FF1 layer: %v", x, err)
		}
	}
}

func TestTweakSeparatesDomainsVersionsModes(t *testing.T) {
	key := testKey(5)
	const card = "4111111111111111"
	enc := func(domain string, version int, f Format) string {
		out, err := mustCipher(t, key, domain, version).Encrypt(f, card)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	base := enc("payments.card_number", 1, Format{Mode: ModeKeepBINLast4NoLuhn})
	if again := enc("payments.card_number", 1, Format{Mode: ModeKeepBINLast4NoLuhn}); again != base {
		t.Fatal("not deterministic")
	}
	others := map[string]string{
		"domain":  enc("loyalty.card_number", 1, Format{Mode: ModeKeepBINLast4NoLuhn}),
		"version": enc("payments.card_number", 2, Format{Mode: ModeKeepBINLast4NoLuhn}),
		"mode":    enc("payments.card_number", 1, Format{Mode: ModeKeepBINLast4}),
	}
	for what, o := range others {
		if o == base {
			t.Errorf("changing the %s did not change the token", what)
		}
	}
	// The digit count is in the tweak: the same 12 leading digits in a
	// 13- and a 14-digit value encrypt independently (checked loosely: the
	// 12-digit prefixes of the tokens differ).
	c := mustCipher(t, key, "ids", 1)
	a, _ := c.Encrypt(Format{Mode: ModeDigits}, "1234567890123")
	b, _ := c.Encrypt(Format{Mode: ModeDigits}, "12345678901234")
	if a[:12] == b[:12] {
		t.Error("length not bound")
	}
}

func TestParseFormat(t *testing.T) {
	for _, tc := range []struct {
		mode, fb string
		want     Format
		err      error
	}{
		{"", "", Format{Mode: ModeFull}, nil},
		{"full", "", Format{Mode: ModeFull}, nil},
		{"keep-bin-last4", "full", Format{Mode: ModeKeepBINLast4, FallbackFull: true}, nil},
		{"keep-bin-last4-no-luhn", "", Format{Mode: ModeKeepBINLast4NoLuhn}, nil},
		{"digits", "", Format{Mode: ModeDigits}, nil},
		{"digits", "full", Format{}, ErrUnknownFormat},
		{"keep-bin-last4", "digits", Format{}, ErrUnknownFormat},
		{"ff3", "", Format{}, ErrUnknownFormat},
	} {
		got, err := ParseFormat(tc.mode, tc.fb)
		if got != tc.want || !errors.Is(err, tc.err) && !(err == nil && tc.err == nil) {
			t.Errorf("ParseFormat(%q, %q) = %v, %v", tc.mode, tc.fb, got, err)
		}
	}
	if s := (Format{Mode: ModeKeepBINLast4, FallbackFull: true}).String(); s != "keep-bin-last4,fallback=full" {
		t.Errorf("String = %q", s)
	}
	if s := (Format{}).String(); s != "full" {
		t.Errorf("zero Format String = %q", s)
	}
}

func TestServiceVersions(t *testing.T) {
	s := NewService()
	const d = "payments.card_number"
	if _, _, err := s.Encrypt(d, Format{}, "4111111111111111"); !errors.Is(err, ErrUnknownDomain) {
		t.Fatalf("unknown domain: %v", err)
	}
	if err := s.AddKey(d, 1, testKey(1), false); err != nil {
		t.Fatal(err)
	}
	tok1, v, err := s.Encrypt(d, Format{}, "4111111111111111")
	if err != nil || v != 1 {
		t.Fatalf("v=%d err=%v", v, err)
	}
	if err := s.AddKey(d, 2, testKey(2), false); err != nil {
		t.Fatal(err)
	}
	if cur, _ := s.Current(d); cur != 1 {
		t.Fatalf("current = %d after adding a non-current version", cur)
	}
	if err := s.AddKey(d, 3, testKey(3), true); err != nil {
		t.Fatal(err)
	}
	if err := s.AddKey(d, 3, testKey(4), true); err == nil {
		t.Fatal("duplicate version accepted")
	}
	tok3, v, err := s.Encrypt(d, Format{}, "4111111111111111")
	if err != nil || v != 3 || tok3 == tok1 {
		t.Fatalf("v=%d err=%v same=%v", v, err, tok3 == tok1)
	}
	if got, err := s.Decrypt(d, Format{}, 1, tok1); err != nil || got != "4111111111111111" {
		t.Fatalf("decrypt v1: %q %v", got, err)
	}
	_, err = s.Decrypt(d, Format{}, 7, tok1)
	if !errors.Is(err, ErrUnknownVersion) || Code(err) != CodeUnknownVersion {
		t.Fatalf("unknown version: %v", err)
	}
	if !strings.Contains(err.Error(), "loaded: 1,2,3") {
		t.Errorf("message: %v", err)
	}
	if ds := s.Domains(); len(ds) != 1 || ds[0] != d {
		t.Fatalf("Domains = %v", ds)
	}
}

// TestServiceConcurrent shares one Service between many goroutines that
// encrypt and decrypt in every mode and compare with answers computed
// beforehand on separate ciphers, one call at a time.
func TestServiceConcurrent(t *testing.T) {
	const (
		goroutines = 32
		domainA    = "payments.card_number"
		domainB    = "loyalty.card_number"
	)
	perG := 300
	if raceEnabled || testing.Short() {
		perG = 60
	}
	s := NewService()
	for _, k := range []struct {
		d string
		v int
		b byte
	}{{domainA, 1, 10}, {domainA, 2, 20}, {domainB, 1, 30}} {
		if err := s.AddKey(k.d, k.v, testKey(k.b), true); err != nil {
			t.Fatal(err)
		}
	}
	refs := map[string]*Cipher{
		domainA: mustCipher(t, testKey(20), domainA, 2),
		domainB: mustCipher(t, testKey(30), domainB, 1),
	}
	formats := []Format{{Mode: ModeFull}, {Mode: ModeKeepBINLast4}, {Mode: ModeKeepBINLast4NoLuhn}, {Mode: ModeDigits}, {Mode: ModeKeepBINLast4, FallbackFull: true}}
	type job struct {
		domain   string
		f        Format
		in, want string
	}
	r := rand.New(rand.NewPCG(5, 6))
	jobs := make([]job, goroutines*perG)
	for i := range jobs {
		d := []string{domainA, domainB}[i%2]
		f := formats[r.IntN(len(formats))]
		n := 16 + r.IntN(4)
		if f.FallbackFull || f.Mode == ModeFull {
			n = 12 + r.IntN(8)
		}
		in := randomCard(r, n)
		want, err := refs[d].Encrypt(f, in)
		if err != nil {
			t.Fatal(err)
		}
		jobs[i] = job{d, f, in, want}
	}
	var wrong atomic.Int64
	var wg sync.WaitGroup
	// A writer adds keys to another domain meanwhile: snapshot swaps must
	// not disturb readers.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for v := 1; v <= 20; v++ {
			if err := s.AddKey("other.domain", v, testKey(byte(v)), true); err != nil {
				t.Error(err)
			}
		}
	}()
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(jobs); i += goroutines {
				j := jobs[i]
				out, v, err := s.Encrypt(j.domain, j.f, j.in)
				if err != nil || out != j.want || v != refs[j.domain].Version() {
					wrong.Add(1)
					continue
				}
				back, err := s.Decrypt(j.domain, j.f, v, out)
				if err != nil || back != j.in {
					wrong.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if w := wrong.Load(); w != 0 {
		t.Fatalf("%d of %d operations gave wrong results", w, len(jobs))
	}
	t.Logf("%d goroutines, %d encrypt+decrypt pairs, 0 wrong", goroutines, len(jobs))
}
