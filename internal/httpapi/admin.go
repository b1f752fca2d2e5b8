package httpapi

// Admin endpoints for key lifecycle operations, under /v3/admin and so reserved to
// principals with the admin right (auth.go):
//
//	GET  /v3/admin/keys                         the transit keys the policies use
//	GET  /v3/admin/keys/{key}                   one of them: versions, min versions, auto-rotation
//	POST /v3/admin/keys/{key}/rotate            add a version
//	POST /v3/admin/keys/{key}/config            {"min_decryption_version":N, "min_encryption_version":N, "auto_rotate_period":"24h"}
//	POST /v3/admin/topics/{topic}/rotate        rotate every key the topic's policy encrypts with (transit and FPE)
//	GET  /v3/admin/topics/{topic}/inventory     records per key version (lifecycle.Inventory)
//
// Only keys the policies use can be managed: any other name is 404.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/lifecycle"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// Admin endpoint error codes (docs/errors.md).
const (
	CodeKeyNotFound  = 40421 // the key is not a transit key of any policy
	CodeAdminDisable = 50121 // this server has no admin service (501)
)

// AdminService is what the admin endpoints need; the gateway implements it
// (gateway/rotate.go).
type AdminService interface {
	ListKeys(ctx context.Context) ([]lifecycle.KeyStatus, error)
	ShowKey(ctx context.Context, key string) (lifecycle.KeyStatus, error)
	RotateKey(ctx context.Context, key string) (lifecycle.KeyStatus, error)
	ConfigureKey(ctx context.Context, key string, c lifecycle.KeyConfig) (lifecycle.KeyStatus, error)
	RotateTopic(ctx context.Context, topic string) ([]lifecycle.Rotated, error)
	Inventory(ctx context.Context, topic string) (*lifecycle.Inventory, error)
}

// adminRoutes mounts the admin endpoints; without an AdminService they
// answer 501.
func (s *Server) adminRoutes(r chi.Router) {
	r.Get("/keys", s.adminHandler(func(r *http.Request) (any, error) { return s.cfg.Admin.ListKeys(r.Context()) }))
	r.Get("/keys/{key}", s.adminHandler(func(r *http.Request) (any, error) {
		ks, err := s.cfg.Admin.ShowKey(r.Context(), chi.URLParam(r, "key"))
		if err == nil && !ks.Exists {
			err = lifecycle.ErrUnknownKey
		}
		return ks, err
	}))
	r.Post("/keys/{key}/rotate", s.adminHandler(func(r *http.Request) (any, error) {
		return s.cfg.Admin.RotateKey(r.Context(), chi.URLParam(r, "key"))
	}))
	r.Post("/keys/{key}/config", s.adminHandler(func(r *http.Request) (any, error) {
		var body struct {
			MinDecryptionVersion *int    `json:"min_decryption_version"`
			MinEncryptionVersion *int    `json:"min_encryption_version"`
			AutoRotatePeriod     *string `json:"auto_rotate_period"`
		}
		dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			return nil, adminErr{&apiError{ErrorCode: CodeBadJSON, Message: "body must be a JSON object with min_decryption_version, min_encryption_version or auto_rotate_period: " + err.Error()}}
		}
		c := lifecycle.KeyConfig{MinDecryptionVersion: body.MinDecryptionVersion, MinEncryptionVersion: body.MinEncryptionVersion}
		if body.AutoRotatePeriod != nil {
			d, err := time.ParseDuration(*body.AutoRotatePeriod)
			if err != nil {
				return nil, adminErr{&apiError{ErrorCode: CodeBadRequestField, Message: "auto_rotate_period must be a duration such as 24h or 0s", Field: "auto_rotate_period"}}
			}
			c.AutoRotatePeriod = &d
		}
		if c.MinDecryptionVersion == nil && c.MinEncryptionVersion == nil && c.AutoRotatePeriod == nil {
			return nil, adminErr{&apiError{ErrorCode: CodeBadRequestField, Message: "give min_decryption_version, min_encryption_version or auto_rotate_period"}}
		}
		return s.cfg.Admin.ConfigureKey(r.Context(), chi.URLParam(r, "key"), c)
	}))
	r.Post("/topics/{topic}/rotate", s.adminHandler(func(r *http.Request) (any, error) {
		return s.cfg.Admin.RotateTopic(r.Context(), chi.URLParam(r, "topic"))
	}))
	r.Get("/topics/{topic}/inventory", s.adminHandler(func(r *http.Request) (any, error) {
		return s.cfg.Admin.Inventory(r.Context(), chi.URLParam(r, "topic"))
	}))
}

func (s *Server) adminHandler(fn func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Admin == nil {
			writeErr(w, newErr(CodeAdminDisable, "the admin endpoints are not enabled on this server"))
			return
		}
		out, err := fn(r)
		var ae adminErr
		switch {
		case err == nil:
			writeJSON(w, http.StatusOK, out)
		case errors.As(err, &ae):
			writeErr(w, ae.e)
		case errors.Is(err, lifecycle.ErrUnknownKey):
			writeErr(w, newErr(CodeKeyNotFound, err.Error()))
		case errors.Is(err, lifecycle.ErrNoPolicy):
			writeErr(w, newErr(CodeNoPolicy, err.Error()))
		case errors.Is(err, kafka.ErrUnknownTopic):
			writeErr(w, newErr(CodeTopicNotFound, "unknown topic"))
		case errors.Is(err, vaultclient.ErrInvalid):
			// Vault refused the request as invalid (e.g. a
			// min_decryption_version above the latest version).
			writeErr(w, &apiError{ErrorCode: CodeBadRequestField, Message: err.Error()})
		default:
			writeErr(w, fromError(err))
		}
	}
}

// adminErr carries an API error through an admin handler's error result.
type adminErr struct{ e *apiError }

func (a adminErr) Error() string { return a.e.Message }
