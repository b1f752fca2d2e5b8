package lifecycle_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kafkagate/kafkagate/internal/httpapi"
	"github.com/kafkagate/kafkagate/internal/lifecycle"
	"github.com/kafkagate/kafkagate/internal/protect"
	"github.com/kafkagate/kafkagate/internal/testkit"
)

// TestAdminEndpoints: show, rotate (key and topic), config and inventory
// over HTTP with the access model: an admin token gets them, a token with
// produce and consume rights only gets 403 and changes nothing, keys the
// policies do not use are 404.
func TestAdminEndpoints(t *testing.T) {
	env := testkit.Start(t)
	ctx := context.Background()
	admin, _, err := httpapi.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	user, _, _ := httpapi.NewToken()
	dir := t.TempDir()
	access := filepath.Join(dir, "access")
	if err := os.WriteFile(access, []byte("token "+httpapi.HashToken(admin)+" ops admin\ntoken "+httpapi.HashToken(user)+" app produce:orders consume:orders\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gw, srv := provisionedGateway(t, env, "[kafkagate]\naccess_file = "+access+"\n[policy:orders]\nfields = Name transit\n")
	call := func(method, path, token, body string) (int, []byte) {
		t.Helper()
		resp, b := testkit.Do(t, nil, method, srv.URL+path, "Bearer "+token, body)
		return resp.StatusCode, b
	}
	cid, _ := gw.Kafka.ClusterID(ctx)
	for i := 0; i < 2; i++ {
		if st, b := call("POST", "/v3/clusters/"+cid+"/topics/orders/records", user, `{"partition_id":0,"value":{"type":"JSON","data":{"Name":"Ann"}}}`); st != 200 {
			t.Fatalf("produce: %d %s", st, b)
		}
	}

	// Not admin: 403 everywhere, nothing rotated.
	for _, c := range [][2]string{{"GET", "/v3/admin/keys"}, {"GET", "/v3/admin/keys/kafka-orders"}, {"POST", "/v3/admin/keys/kafka-orders/rotate"}, {"POST", "/v3/admin/topics/orders/rotate"}, {"GET", "/v3/admin/topics/orders/inventory"}} {
		if st, b := call(c[0], c[1], user, ""); st != 403 || errorCode(t, b) != httpapi.CodeForbidden {
			t.Fatalf("%s %s as app: %d %s", c[0], c[1], st, b)
		}
	}
	var ks lifecycle.KeyStatus
	st, b := call("GET", "/v3/admin/keys/kafka-orders", admin, "")
	if st != 200 || json.Unmarshal(b, &ks) != nil || ks.LatestVersion != 1 {
		t.Fatalf("show: %d %s", st, b)
	}
	if st, b = call("POST", "/v3/admin/keys/kafka-orders/rotate", admin, ""); st != 200 || json.Unmarshal(b, &ks) != nil || ks.LatestVersion != 2 {
		t.Fatalf("rotate: %d %s", st, b)
	}
	var rot []lifecycle.Rotated
	if st, b = call("POST", "/v3/admin/topics/orders/rotate", admin, ""); st != 200 || json.Unmarshal(b, &rot) != nil || len(rot) != 1 || rot[0].Version != 3 {
		t.Fatalf("rotate topic: %d %s", st, b)
	}
	if st, b = call("POST", "/v3/clusters/"+cid+"/topics/orders/records", user, `{"partition_id":0,"value":{"type":"JSON","data":{"Name":"Bo"}}}`); st != 200 || !strings.Contains(string(b), `"key_version":3`) {
		t.Fatalf("produce after rotation: %d %s", st, b)
	}
	var inv lifecycle.Inventory
	if st, b = call("GET", "/v3/admin/topics/orders/inventory", admin, ""); st != 200 || json.Unmarshal(b, &inv) != nil {
		t.Fatalf("inventory: %d %s", st, b)
	}
	if got := inv.Versions(protect.UseTransit, "kafka-orders"); len(got) != 2 || got[0] != 1 || got[1] != 3 || inv.Records != 3 {
		t.Fatalf("inventory: %s", b)
	}
	if st, b = call("POST", "/v3/admin/keys/kafka-orders/config", admin, `{"min_decryption_version":3,"auto_rotate_period":"48h"}`); st != 200 || json.Unmarshal(b, &ks) != nil || ks.MinDecryptionVersion != 3 || ks.AutoRotatePeriod != "48h0m0s" {
		t.Fatalf("config: %d %s", st, b)
	}
	if st, b = call("POST", "/v3/admin/keys/kafka-orders/config", admin, `{"min_decryption_version":9}`); st != 400 || errorCode(t, b) != httpapi.CodeBadRequestField {
		t.Fatalf("config above latest: %d %s", st, b)
	}
	if st, b = call("POST", "/v3/admin/keys/kafka-orders/config", admin, `{"min_decryption":3}`); st != 400 || errorCode(t, b) != httpapi.CodeBadJSON {
		t.Fatalf("config with an unknown field: %d %s", st, b)
	}
	for _, p := range []string{"/v3/admin/keys/kafkagate-fpe-kek", "/v3/admin/keys/nope"} {
		if st, b = call("GET", p, admin, ""); st != 404 || errorCode(t, b) != httpapi.CodeKeyNotFound {
			t.Fatalf("GET %s: %d %s", p, st, b)
		}
	}
	if st, b = call("POST", "/v3/admin/topics/nopolicy/rotate", admin, ""); st != 403 || errorCode(t, b) != httpapi.CodeNoPolicy {
		t.Fatalf("rotate a topic without policy: %d %s", st, b)
	}
	var list []lifecycle.KeyStatus
	if st, b = call("GET", "/v3/admin/keys", admin, ""); st != 200 || json.Unmarshal(b, &list) != nil || len(list) != 1 || list[0].LatestVersion != 3 || list[0].MinDecryptionVersion != 3 {
		t.Fatalf("list: %d %s", st, b)
	}
	t.Logf("admin: show v1 -> rotate v2 -> topic rotate v3; inventory versions %v over %d records; config min_decryption_version=3; app token 403 on all 5 endpoints", inv.Versions(protect.UseTransit, "kafka-orders"), inv.Records)
}
