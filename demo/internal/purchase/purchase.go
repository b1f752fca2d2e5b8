// Package purchase is the record of the original demo: a purchase with a
// customer Name, an Address and a credit_card number written
// DDDD-DDDD-DDDD-DDDD. It generates fake purchases with gofakeit (Luhn-valid
// card numbers, never real data) and checks card numbers.
package purchase

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/brianvoe/gofakeit/v7"
	"github.com/kafkagate/kafkagate/internal/fpe"
)

// Purchase is one record value, serialised with the original field names.
type Purchase struct {
	Name       string `json:"Name"`
	Address    string `json:"Address"`
	CreditCard string `json:"credit_card"`
}

// JSON is the record value.
func (p Purchase) JSON() []byte {
	b, err := json.Marshal(p)
	if err != nil { // a struct of strings always marshals
		panic(fmt.Sprintf("purchase: marshal: %v", err))
	}
	return b
}

// Generator makes fake purchases. It is not safe for concurrent use.
type Generator struct {
	f *gofakeit.Faker
	n int
}

// NewGenerator returns a generator; seed 0 picks a random seed, any other
// seed repeats the same sequence.
func NewGenerator(seed uint64) *Generator {
	return &Generator{f: gofakeit.New(seed)}
}

// Next returns a fake purchase and its record key, a customer id that says
// nothing about the customer (record keys are stored in clear).
func (g *Generator) Next() (key string, p Purchase) {
	g.n++
	p = Purchase{
		Name:       g.f.Name(),
		Address:    g.f.Address().Address,
		CreditCard: g.card(),
	}
	return fmt.Sprintf("customer-%06d", g.f.Number(1, 999999)), p
}

// card returns a Luhn-valid 16-digit Visa or Mastercard number in groups
// of four.
func (g *Generator) card() string {
	for {
		n := g.f.CreditCardNumber(&gofakeit.CreditCardOptions{Types: []string{"visa", "mastercard"}})
		if len(n) == 16 && fpe.Luhn(n) {
			return FormatCard(n)
		}
	}
}

// FormatCard writes 16 digits as DDDD-DDDD-DDDD-DDDD; other input is
// returned unchanged.
func FormatCard(digits string) string {
	if len(digits) != 16 || strings.Trim(digits, "0123456789") != "" {
		return digits
	}
	return digits[0:4] + "-" + digits[4:8] + "-" + digits[8:12] + "-" + digits[12:16]
}

// IsCard reports whether s is DDDD-DDDD-DDDD-DDDD with a valid Luhn check
// digit.
func IsCard(s string) bool {
	if len(s) != 19 {
		return false
	}
	for i := 0; i < 19; i++ {
		if i%5 == 4 {
			if s[i] != '-' {
				return false
			}
		} else if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return fpe.Luhn(strings.ReplaceAll(s, "-", ""))
}
