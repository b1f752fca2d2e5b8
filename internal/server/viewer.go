package server

import (
	"context"
	"net/http"
	"strings"

	"github.com/kafkagate/kafkagate/internal/ui"
)

// newViewer builds the live viewer served under /ui, unless [kafkagate]
// ui = off. It reads with the gateway's Kafka client, decrypts with its
// engine and authenticates with its access file, like the API.
func (g *Gateway) newViewer() http.Handler {
	if v := strings.ToLower(g.Config.Get("kafkagate", "ui", "on")); v == "off" || v == "false" || v == "no" {
		return nil
	}
	return ui.New(ui.Config{
		Kafka:     g.Kafka,
		Engine:    g.Engine,
		Policies:  g.Config.Policies,
		Topics:    g.topics,
		ClusterID: g.Kafka.ClusterID,
		Rotate: func(ctx context.Context, topic string) ([]ui.Rotation, error) {
			rs, err := g.RotateTopicKeys(ctx, topic)
			out := make([]ui.Rotation, len(rs))
			for i, r := range rs {
				out[i] = ui.Rotation(r)
			}
			return out, err
		},
		Access: g.Access,
		Admit:  g.API.Admit,
		Logger: g.log,
	})
}

// topics lists the cluster's topics from fresh metadata (no topic is
// created by asking). The viewer reuses a list for a few seconds
// (ui.Config.TopicsTTL), so its polls do not refresh metadata each.
func (g *Gateway) topics(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return g.Kafka.Topics()
}

// Handler is what Serve serves: the API, and the viewer under /ui.
func (g *Gateway) Handler() http.Handler {
	if g.UI == nil {
		return g.API
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ui" || strings.HasPrefix(r.URL.Path, "/ui/") {
			g.UI.ServeHTTP(w, r)
			return
		}
		g.API.ServeHTTP(w, r)
	})
}
