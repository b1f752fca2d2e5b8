package gateway

import (
	"context"
	"fmt"
	"slices"

	"github.com/kafkagate/kafkagate/fpe"
	"github.com/kafkagate/kafkagate/policy"
)

// Rotated is a key version created by RotateTopicKeys.
type Rotated struct {
	Kind    string `json:"kind"`             // "transit" or "fpe"
	Key     string `json:"key,omitempty"`    // transit key
	Domain  string `json:"domain,omitempty"` // FPE domain
	Version int    `json:"version"`          // the version new records now use
}

// TopicKeys lists the keys new records of a policy are encrypted with:
// transit keys (the policy's transit key when a field uses transit; the
// KEK in envelope mode) and FPE domains.
func TopicKeys(p *policy.Policy) (transitKeys, fpeDomains []string) {
	switch p.Mode {
	case policy.Envelope:
		return []string{p.Envelope.Key}, nil
	case policy.Passthrough:
		return nil, nil
	}
	for _, f := range p.Fields {
		switch f.Mode {
		case policy.Transit:
			if !slices.Contains(transitKeys, p.TransitKey) {
				transitKeys = append(transitKeys, p.TransitKey)
			}
		case policy.FPE:
			if d := f.Options["domain"]; !slices.Contains(fpeDomains, d) {
				fpeDomains = append(fpeDomains, d)
			}
		}
	}
	return transitKeys, fpeDomains
}

// RotateTopicKeys adds a version to every key that topic's policy
// encrypts new records with (see TopicKeys). New records use the new
// versions at once in this gateway (its FPE keyring is reloaded); older
// records keep decrypting. Other processes pick up FPE versions at their
// next refresh ([kafkagate] fpe_refresh). An envelope KEK may be shared by
// several topics: they all move to the new version.
func (g *Gateway) RotateTopicKeys(ctx context.Context, topic string) ([]Rotated, error) {
	p, ok := g.Config.Policies.For(topic)
	if !ok {
		return nil, fmt.Errorf("topic %q has no policy: no keys to rotate", topic)
	}
	keys, domains := TopicKeys(p)
	var out []Rotated
	for _, k := range keys {
		v, err := g.Transit.Rotate(ctx, k)
		if err != nil {
			return out, fmt.Errorf("rotate transit key %s: %w", k, err)
		}
		out = append(out, Rotated{Kind: "transit", Key: k, Version: v})
	}
	kr := g.FPEKeys
	if kr == nil && len(domains) > 0 {
		kr = fpe.NewKeyring(g.Vault, KeyringOptions(g.Config))
	}
	for _, d := range domains {
		v, err := kr.Rotate(ctx, d)
		if err != nil {
			return out, fmt.Errorf("rotate fpe domain %s: %w", d, err)
		}
		out = append(out, Rotated{Kind: "fpe", Domain: d, Version: v})
	}
	return out, nil
}
