package fpe

import (
	"math/rand/v2"
	"testing"

	"github.com/capitalone/fpe/ff1"
)

const bench16 = "4111111111111111"

// BenchmarkFF1Raw is capitalone/fpe's ff1 alone on 16 digits, with the
// tweak the wrapper's digits mode uses for that value: the baseline.
func BenchmarkFF1Raw(b *testing.B) {
	c := mustCipher(b, testKey(1), "payments.card_number", 1)
	tweak := c.tweak(Format{}, ModeDigits, len(bench16), nil)
	raw, err := ff1.NewCipher(10, maxTweak, testKey(1), nil)
	if err != nil {
		b.Fatal(err)
	}
	benchLoop(b, func() error {
		_, err := raw.EncryptWithTweak(bench16, tweak)
		return err
	})
}

// BenchmarkFF1Wrapper is the same FF1 call through Cipher.Encrypt in mode
// digits: validation, tweak building, the cipher pool and reassembly.
func BenchmarkFF1Wrapper(b *testing.B) {
	c := mustCipher(b, testKey(1), "payments.card_number", 1)
	f := Format{Mode: ModeDigits}
	benchLoop(b, func() error {
		_, err := c.Encrypt(f, bench16)
		return err
	})
}

// benchLoop reports allocations and runs op once per iteration, failing
// the benchmark on its first error.
func benchLoop(b *testing.B, op func() error) {
	b.ReportAllocs()
	for b.Loop() {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFF1WrapperParallel shares one Cipher between GOMAXPROCS
// goroutines (safe thanks to the pool).
func BenchmarkFF1WrapperParallel(b *testing.B) {
	c := mustCipher(b, testKey(1), "payments.card_number", 1)
	f := Format{Mode: ModeDigits}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Encrypt(f, bench16); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCards encrypts and decrypts random 16-digit Luhn-valid cards in
// each mode and reports cards per second on one goroutine.
func BenchmarkCards(b *testing.B) {
	c := mustCipher(b, testKey(1), "payments.card_number", 1)
	r := rand.New(rand.NewPCG(7, 8))
	cards := make([]string, 1024)
	for i := range cards {
		cards[i] = randomCard(r, 16)
	}
	for _, m := range []Mode{ModeFull, ModeKeepBINLast4, ModeKeepBINLast4NoLuhn, ModeDigits} {
		f := Format{Mode: m}
		toks := make([]string, len(cards))
		for i, card := range cards {
			toks[i], _ = c.Encrypt(f, card)
		}
		b.Run("encrypt/"+string(m), func(b *testing.B) {
			benchCards(b, cards, func(card string) error {
				_, err := c.Encrypt(f, card)
				return err
			})
		})
		b.Run("decrypt/"+string(m), func(b *testing.B) {
			benchCards(b, toks, func(tok string) error {
				_, err := c.Decrypt(f, tok)
				return err
			})
		})
	}
}

// benchCards runs op on the values in turn, once per iteration, and
// reports cards per second.
func benchCards(b *testing.B, values []string, op func(string) error) {
	i := 0
	for b.Loop() {
		if err := op(values[i%len(values)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cards/s")
}
