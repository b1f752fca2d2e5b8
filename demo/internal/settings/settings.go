// Package settings reads what the demo programs take from the
// configuration file, which keeps the original demo's getting_started.ini
// format: the topics, counts and directories of [plaintext-msg-demo],
// [encryptor] and [large_payload], and [consumer] group.id. It fills in what
// the original template left out (sleep_ms) and falls back to the embedded
// default configuration when the default file is absent.
package settings

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"

	"github.com/kafkagate/kafkagate"
	"github.com/kafkagate/kafkagate/internal/config"
)

// DefaultFile is the --config_file default, as in the original demo.
const DefaultFile = "getting_started.ini"

// DefaultSleep is the delay between two produced records when
// [plaintext-msg-demo] has no sleep_ms (the original template forgot it
// and the original producer crashed).
const DefaultSleep = time.Second

// Demo holds the demo sections.
type Demo struct {
	PlaintextTopic string        // [plaintext-msg-demo] topic
	NumberOfMsg    int           // [plaintext-msg-demo] number_of_msg
	Sleep          time.Duration // [plaintext-msg-demo] sleep_ms
	SourceTopic    string        // [encryptor] sourcetopic
	TargetTopic    string        // [encryptor] targettopic
	FileTopic      string        // [large_payload] topic
	SourceDir      string        // [large_payload] sourcedir
	DestinationDir string        // [large_payload] destinationdir
	Group          string        // [consumer] group.id
}

// Load reads the configuration file at path. When path is DefaultFile and
// explicit is false (the user did not name a file) and that file does not
// exist, it parses the embedded default configuration instead and says so
// in the second result.
func Load(path string, explicit bool) (*config.File, string, error) {
	if path == "" || (!explicit && path == DefaultFile) {
		if _, err := os.Stat(DefaultFile); errors.Is(err, fs.ErrNotExist) || path == "" {
			f, err := config.Parse(kafkagate.DefaultConfig)
			if err != nil {
				return nil, "", fmt.Errorf("embedded configuration: %w", err)
			}
			return f, "no " + DefaultFile + " here: using the embedded default configuration (getting_started.ini.orig)", nil
		}
		path = DefaultFile
	}
	f, err := config.Load(path)
	if err != nil {
		return nil, "", err
	}
	return f, "", nil
}

// Read takes the demo settings from f, with the original's defaults.
func Read(f *config.File) (Demo, error) {
	d := Demo{
		PlaintextTopic: f.Get("plaintext-msg-demo", "topic", "purchases"),
		SourceTopic:    f.Get("encryptor", "sourcetopic", "purchases"),
		TargetTopic:    f.Get("encryptor", "targettopic", "purchases_encrypted"),
		FileTopic:      f.Get("large_payload", "topic", "purchases_large_encrypted"),
		SourceDir:      f.Get("large_payload", "sourcedir", "source"),
		DestinationDir: f.Get("large_payload", "destinationdir", "destination"),
		Group:          f.Get("consumer", "group.id", "kafkagate_demo"),
		Sleep:          DefaultSleep,
	}
	n, err := strconv.Atoi(f.Get("plaintext-msg-demo", "number_of_msg", "10"))
	if err != nil || n < 0 {
		return d, fmt.Errorf("%w: [plaintext-msg-demo] number_of_msg = %q: want a whole number >= 0", config.ErrConfig, f.Get("plaintext-msg-demo", "number_of_msg", ""))
	}
	d.NumberOfMsg = n
	if v := f.Get("plaintext-msg-demo", "sleep_ms", ""); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms < 0 {
			return d, fmt.Errorf("%w: [plaintext-msg-demo] sleep_ms = %q: want milliseconds >= 0", config.ErrConfig, v)
		}
		d.Sleep = time.Duration(ms) * time.Millisecond
	}
	return d, nil
}

// ConsumerGroup is the consumer group of one demo program: [consumer]
// group.id with the program's name appended. The original programs all
// shared group.id and took each other's partitions.
func (d Demo) ConsumerGroup(program string) string { return d.Group + "." + program }
