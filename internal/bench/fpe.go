package bench

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/capitalone/fpe/ff1"

	"github.com/kafkagate/kafkagate/internal/fpe"
)

// fpeResult compares kafkagate's FPE wrapper (fpe.Cipher in mode digits on
// 16 digits: validation, tweak, cipher pool, reassembly) with the same
// FF1 call made on capitalone/fpe's ff1.Cipher directly, one goroutine
// each, best of alternating rounds.
type fpeResult struct {
	WrapperPerSec float64 `json:"wrapper_per_sec"`
	RawPerSec     float64 `json:"raw_per_sec"`
}

const fpeDomain = "bench.card"

func (e *env) fpeWrapper() (*fpeResult, error) {
	key := make([]byte, fpe.KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("fpe key: %w", err)
	}
	c, err := fpe.NewCipher(key, fpeDomain, 1)
	if err != nil {
		return nil, err
	}
	raw, err := ff1.NewCipher(10, 256, key, nil)
	if err != nil {
		return nil, fmt.Errorf("ff1: %w", err)
	}
	const value = "4111111111111111"
	// The tweak the wrapper builds for this value (docs/fpe.md): raw FF1
	// does exactly the same cryptographic work.
	tweak := []byte("kafkagate-fpe|" + fpeDomain + "|v1|digits|16")
	f := fpe.Format{Mode: fpe.ModeDigits}
	if _, err := c.Encrypt(f, value); err != nil {
		return nil, err
	}
	rate := func(fn func() error) (float64, error) {
		start := time.Now()
		deadline := start.Add(e.cfg.Point / 2)
		n := 0
		for time.Now().Before(deadline) {
			for range 256 {
				if err := fn(); err != nil {
					return 0, err
				}
			}
			n += 256
		}
		return float64(n) / time.Since(start).Seconds(), nil
	}
	res := &fpeResult{}
	for range e.cfg.Rounds {
		w, err := rate(func() error { _, err := c.Encrypt(f, value); return err })
		if err != nil {
			return nil, err
		}
		r, err := rate(func() error { _, err := raw.EncryptWithTweak(value, tweak); return err })
		if err != nil {
			return nil, fmt.Errorf("ff1: %w", err)
		}
		res.WrapperPerSec, res.RawPerSec = max(res.WrapperPerSec, w), max(res.RawPerSec, r)
	}
	e.progress("fpe wrapper %.0f/s, raw ff1 %.0f/s", res.WrapperPerSec, res.RawPerSec)
	return res, nil
}
