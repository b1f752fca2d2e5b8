package ui_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds a Chromium or Chrome binary (`make deps` installs
// Debian's chromium), or skips the test saying so (fails under make
// test, whose deps step installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium binary on PATH (chromium, chromium-browser, google-chrome, headless-shell): run `make deps` (apt-get install chromium) to run the browser test"
	if os.Getenv("KAFKAGATE_REQUIRE_CHROMIUM") != "" { // make test: deps installed it
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browser starts headless Chromium for t.
func browser(t *testing.T) (context.Context, context.CancelFunc) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // CI runs as root in a container
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1000),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	return ctx, func() { cancel(); cancelBrowser(); cancelAlloc() }
}

// screenshotPath is where a test's screenshot goes: testdata/screenshots
// (git-ignored) of this package.
func screenshotPath(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join("testdata", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// paneTexts returns the text of the newest record's stored and decrypted
// panes ("" while there is none).
const paneTexts = `(function () {
  var li = document.querySelector('#records li.record');
  if (!li) { return ['', '']; }
  return [li.querySelector('.pane.stored').innerText, li.querySelector('.pane.decrypted').innerText];
})()`

// waitPanes polls the page until the newest record's decrypted pane
// contains want, and returns both panes' text.
func waitPanes(t *testing.T, ctx context.Context, want string) (stored, decrypted string, took time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		panes, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](paneTexts))
		if err != nil {
			t.Fatalf("read the record panes: %v", err)
		}
		if strings.Contains(panes[1], want) {
			return panes[0], panes[1], time.Since(start)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no record showing %q within the test's deadline; panes %q", want, panes)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestViewerInBrowser loads /ui in headless Chromium on the embedded
// defaults, posts a record through the REST API and waits for it in both
// panes: the stored pane shows ciphertext and key versions and none of
// the plaintext, the decrypted pane the purchase.
func TestViewerInBrowser(t *testing.T) {
	s := serve(t)
	ctx, cancel := browser(t)
	defer cancel()
	const topic = "purchases_encrypted"
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.base+"/ui?topic="+topic), // the redirect to /ui/ keeps the query
		chromedp.WaitVisible(`#records`),
	); err != nil {
		t.Fatalf("load the viewer: %v", err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById('status').textContent.indexOf('Connecting') < 0`, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("the page never got past Connecting: %v", err)
	}
	status, err := chromedp.Run(ctx, chromedp.Text(`#status`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(title, topic) {
		t.Errorf("title %q, want the topic", title)
	}
	t.Logf("viewer loaded: %q, status %q", title, status)

	p := newPurchase()
	posted := time.Now()
	s.produce(t, "", topic, p)
	stored, decrypted, took := waitPanes(t, ctx, p.Name)
	t.Logf("the record posted through the API showed in both panes %v after the POST returned (%v after it was sent)", took.Round(time.Millisecond), time.Since(posted).Round(time.Millisecond))
	if took > 15*time.Second {
		t.Errorf("the record took %v to appear; the page polls every second", took)
	}
	for _, sec := range p.plaintexts() {
		if strings.Contains(stored, sec) {
			t.Fatalf("the stored pane shows plaintext %q:\n%s", sec, stored)
		}
		if sec != strings.ReplaceAll(p.CreditCard, "-", "") && !strings.Contains(decrypted, sec) {
			t.Errorf("the decrypted pane lacks %q:\n%s", sec, decrypted)
		}
	}
	for _, want := range []string{"vault:v1:", "kafka-purchases_encrypted", "payments.card_number", "kafkagate.fields"} {
		if !strings.Contains(stored, want) {
			t.Errorf("the stored pane lacks %q:\n%s", want, stored)
		}
	}
	if !strings.Contains(decrypted, "decrypted") {
		t.Errorf("the decrypted pane has no decrypted status:\n%s", decrypted)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := screenshotPath(t, "viewer.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot for review (%d bytes): %s", len(png), path)
}

// TestViewerInBrowserWithoutConsumeRight: with authentication on, a
// viewer whose token lacks consume:<topic> (an operator with admin) sees
// the stored form and a "withheld" note, and no plaintext reaches the
// page.
func TestViewerInBrowserWithoutConsumeRight(t *testing.T) {
	const topic = "purchases_encrypted"
	admin, adminLine := token(t, "operator", "admin")
	producer, producerLine := token(t, "app", "produce:"+topic)
	s := serve(t, adminLine, producerLine)
	ctx, cancel := browser(t)
	defer cancel()
	p := newPurchase()
	s.produce(t, producer, topic, p)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.base+"/ui/?topic="+topic),
		chromedp.WaitVisible(`#token`),
		chromedp.SendKeys(`#token`, admin),
		chromedp.Click(`#auth button[type=submit]`), // Submit would call form.submit(), which skips the page's handler
	); err != nil {
		t.Fatalf("load the viewer with a token: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector('#records li.record') !== null`, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("no record shown to the operator: %v", err)
	}
	panes, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](paneTexts))
	if err != nil {
		t.Fatal(err)
	}
	html, err := chromedp.Run(ctx, chromedp.OuterHTML("html"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(panes[0], "vault:v1:") || !strings.Contains(panes[1], "Plaintext withheld") {
		t.Errorf("panes %q: want the stored ciphertext and a withheld note", panes)
	}
	for _, sec := range p.plaintexts() {
		if strings.Contains(html, sec) {
			t.Fatalf("the page shows plaintext %q to a viewer without consume:%s", sec, topic)
		}
	}
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		path := screenshotPath(t, "viewer-withheld.png")
		if err := os.WriteFile(path, png, 0o644); err == nil {
			t.Logf("screenshot for review: %s", path)
		}
	}
}
