package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/fpe"
	"github.com/kafkagate/kafkagate/internal/fpe/vaultkeyring"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// fpeAdapter serves protect's fpe fields from an fpe.Service.
type fpeAdapter struct{ s *fpe.Service }

// parseFormat reads "mode" or "mode,fallback=full".
func parseFormat(spec, fallback string) (fpe.Format, error) {
	mode, fb, ok := strings.Cut(spec, ",fallback=")
	if ok {
		fallback = fb
	}
	return fpe.ParseFormat(mode, fallback)
}

func (a fpeAdapter) Encrypt(domain, format, fallback, bind, value string) (string, int, string, error) {
	f, err := parseFormat(format, fallback)
	if err != nil {
		return "", 0, "", err
	}
	f.Bind = bind
	out, v, err := a.s.Encrypt(domain, f, value)
	if err != nil {
		return "", 0, "", keyErr(err)
	}
	return out, v, string(f.EffectiveMode(value)), nil
}

func (a fpeAdapter) Decrypt(domain, format, bind string, version int, value string) (string, error) {
	f, err := parseFormat(format, "")
	if err != nil {
		return "", err
	}
	f.Bind = bind
	out, err := a.s.Decrypt(domain, f, version, value)
	return out, keyErr(err)
}

// keyErr marks missing domains and versions as key trouble, not the
// record's fault.
func keyErr(err error) error {
	if errors.Is(err, fpe.ErrUnknownDomain) || errors.Is(err, fpe.ErrUnknownVersion) {
		return fmt.Errorf("%w: %w", protect.ErrKeyUnavailable, err)
	}
	return err
}

// KeyringOptions reads the FPE key storage settings of [kafkagate]:
// fpe_kek, fpe_kv_mount, fpe_kv_prefix.
func KeyringOptions(cfg *config.File) vaultkeyring.Options {
	return vaultkeyring.Options{
		TransitMount: cfg.Get("kafkagate", "transit_mount", "transit"),
		KEK:          cfg.Get("kafkagate", "fpe_kek", ""),
		KVMount:      cfg.Get("kafkagate", "fpe_kv_mount", ""),
		KVPrefix:     cfg.Get("kafkagate", "fpe_kv_prefix", ""),
	}
}

// fpeRefresher keeps a keyring loaded: a first load at start, then a
// refresh every interval, so new key versions are used without a restart.
type fpeRefresher struct {
	kr      *vaultkeyring.Keyring
	domains []string
	every   time.Duration
	log     *slog.Logger
	stop    context.CancelFunc
	done    chan struct{}
}

func startFPE(vc *vaultclient.Client, cfg *config.File, domains []string, log *slog.Logger) (*vaultkeyring.Keyring, *fpeRefresher, error) {
	kr := vaultkeyring.New(vc, KeyringOptions(cfg))
	every, err := time.ParseDuration(cfg.Get("kafkagate", "fpe_refresh", "60s"))
	if err != nil || every <= 0 {
		return nil, nil, fmt.Errorf("[kafkagate] fpe_refresh %q is not a positive duration", cfg.Get("kafkagate", "fpe_refresh", ""))
	}
	rctx, stop := context.WithCancel(context.Background())
	r := &fpeRefresher{kr: kr, domains: domains, every: every, log: log, stop: stop, done: make(chan struct{})}
	if err := r.load(rctx); errors.Is(err, vaultclient.ErrDenied) {
		// A token without unwrap rights on the KEK can never serve FPE.
		stop()
		return nil, nil, fmt.Errorf("load fpe keys: %w", err)
	}
	go r.run(rctx)
	return kr, r, nil
}

// load loads each domain on its own, so one that is not provisioned does
// not keep the others from serving. Fields of a domain that failed are
// refused (503) until a later load succeeds: fail closed, not fatally.
func (r *fpeRefresher) load(ctx context.Context) error {
	var first error
	for _, d := range r.domains {
		lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := r.kr.Load(lctx, d)
		cancel()
		if err != nil && ctx.Err() == nil {
			r.log.Warn("fpe keys of a domain not loaded; its fields are refused until they are", "domain", d, "error", err)
			if first == nil {
				first = err
			}
		}
	}
	return first
}

func (r *fpeRefresher) run(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_ = r.load(ctx) // failures are logged; loaded versions keep serving
	}
}

func (r *fpeRefresher) Close() {
	r.stop()
	<-r.done
}
