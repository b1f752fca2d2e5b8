package testkit

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Do sends method url with body, as JSON when body is not empty or the
// method changes state (the gateway refuses state-changing requests
// without their body type), and with
// header Authorization: auth when auth is not empty, through c (nil:
// http.DefaultClient). It returns the response and its body, read and
// closed.
func Do(t testing.TB, c *http.Client, method, url, auth, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" || method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch || method == http.MethodDelete {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return Call(t, c, req)
}

// Call sends req through c (nil: http.DefaultClient) and returns the
// response and its body, read and closed.
func Call(t testing.TB, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// Bearer is the Authorization value for token ("" for no token).
func Bearer(token string) string {
	if token == "" {
		return ""
	}
	return "Bearer " + token
}

// APIClusterID asks the API at base (GET /v3/clusters, through c with
// Authorization: auth when not empty) for its one cluster's id.
func APIClusterID(t testing.TB, c *http.Client, base, auth string) string {
	t.Helper()
	resp, body := Do(t, c, http.MethodGet, base+"/v3/clusters", auth, "")
	var cl struct {
		Data []struct {
			ClusterID string `json:"cluster_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &cl); err != nil || len(cl.Data) != 1 {
		t.Fatalf("GET /v3/clusters: %d %v %s", resp.StatusCode, err, body)
	}
	return cl.Data[0].ClusterID
}
