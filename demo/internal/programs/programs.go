// Package programs is the command line of the original demo's six
// programs (demo/producer, demo/consumer, demo/encryptor,
// demo/consumer-from-encrypted, demo/producer-file-transfer,
// demo/consumer-file-transfer): each takes --config_file like the
// original (default getting_started.ini, or the embedded defaults when
// that file is absent), reads Vault's address and credentials from the
// VAULT_* environment, and needs no terminal. Errors are one line on
// stderr and exit status 1; bad usage exits 2.
package programs

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kafkagate/kafkagate/demo/internal/connect"
	"github.com/kafkagate/kafkagate/demo/internal/encrypted"
	"github.com/kafkagate/kafkagate/demo/internal/files"
	"github.com/kafkagate/kafkagate/demo/internal/follow"
	"github.com/kafkagate/kafkagate/demo/internal/plaintext"
	"github.com/kafkagate/kafkagate/demo/internal/settings"
	"github.com/kafkagate/kafkagate/internal/config"
	"github.com/kafkagate/kafkagate/internal/core"
	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/policy"
)

// Exit statuses.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// Program is one demo program.
type Program struct {
	Name  string // as invoked, e.g. "consumer-from-encrypted"
	Usage string // one sentence
	// Reset, Max and Once say which of the optional flags it takes.
	Reset, Max, Once bool
	// Vault: the program encrypts or decrypts, so it connects to Vault
	// (env.gw) as well as to Kafka.
	Vault bool
	run   func(ctx context.Context, e *env) error
}

// Main runs p with the process's arguments, streams and signals
// (SIGINT and SIGTERM stop it cleanly) and exits.
func Main(p Program) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := p.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env is what a program runs with.
type env struct {
	cfg   *config.File
	demo  settings.Demo
	reset bool
	max   int
	once  bool
	out   io.Writer
	log   *slog.Logger
	kc    *kafka.Client // always
	gw    *core.Core    // with Program.Vault; gw.Kafka is kc
}

// Run runs p with args and returns its exit status.
func (p Program) Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(p.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s [flags]\n%s\n\nflags:\n", p.Name, p.Usage)
		fs.PrintDefaults()
	}
	cfgPath := fs.String("config_file", settings.DefaultFile, "configuration file (the original demo's getting_started.ini format)")
	logLevel := fs.String("log_level", "warn", "log level on stderr: debug, info, warn or error")
	e := &env{out: stdout}
	if p.Reset {
		fs.BoolVar(&e.reset, "reset", false, "read the topic again from the beginning")
	}
	if p.Max {
		fs.IntVar(&e.max, "max", 0, "stop after this many records (0: follow until Ctrl-C)")
	}
	if p.Once {
		fs.BoolVar(&e.once, "once", false, "stop when the topic is caught up instead of following it")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", p.Name, fs.Arg(0))
		return ExitUsage
	}
	if e.max < 0 {
		fmt.Fprintf(stderr, "%s: --max %d: want a number >= 0\n", p.Name, e.max)
		return ExitUsage
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "%s: --log_level %q: want debug, info, warn or error\n", p.Name, *logLevel)
		return ExitUsage
	}
	e.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config_file" })
	cfg, note, err := settings.Load(*cfgPath, explicit)
	if err == nil {
		e.cfg = cfg
		e.demo, err = settings.Read(cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
		return ExitError
	}
	if note != "" {
		fmt.Fprintf(stderr, "%s: %s\n", p.Name, note)
	}
	if err := p.connectAndRun(ctx, e); err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return ExitOK // stopped by a signal
		}
		fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
		return ExitError
	}
	return ExitOK
}

func (p Program) connectAndRun(ctx context.Context, e *env) error {
	if p.Vault {
		gw, err := connect.Core(e.cfg, e.log)
		if err != nil {
			return err
		}
		defer gw.Close()
		e.gw, e.kc = gw, gw.Kafka
	} else {
		kc, err := connect.Kafka(e.cfg, e.log)
		if err != nil {
			return err
		}
		defer kc.Close()
		e.kc = kc
	}
	return p.run(ctx, e)
}

// Producer is demo 1's producer: [plaintext-msg-demo] number_of_msg fake
// purchases to its topic, in plaintext, sleep_ms apart.
var Producer = Program{
	Name:  "producer",
	Usage: "Demo 1: write fake purchases to [plaintext-msg-demo] topic in plaintext (no kafkagate), as the original producer.py did.",
	run: func(ctx context.Context, e *env) error {
		_, err := plaintext.Produce(ctx, e.kc, plaintext.ProduceOptions{Topic: e.demo.PlaintextTopic, Count: e.demo.NumberOfMsg, Sleep: e.demo.Sleep, Out: e.out})
		return err
	},
}

// Consumer is demo 1's consumer: prints the plaintext topic.
var Consumer = Program{
	Name:  "consumer",
	Usage: "Demo 1: print the records of [plaintext-msg-demo] topic, one JSON object per line.",
	Reset: true, Max: true,
	run: func(ctx context.Context, e *env) error {
		_, err := plaintext.Consume(ctx, e.kc.Settings(), e.follow(e.demo.PlaintextTopic, "consumer"), e.out)
		return err
	},
}

// Encryptor is demo 2's encryptor: the bridge from [encryptor]
// sourcetopic to targettopic under targettopic's policy.
var Encryptor = Program{
	Name:  "encryptor",
	Usage: "Demo 2: encrypt [encryptor] sourcetopic into targettopic under [policy:<targettopic>], until Ctrl-C.",
	Reset: true, Vault: true,
	run: func(ctx context.Context, e *env) error {
		br, err := encrypted.NewEncryptor(ctx, encrypted.EncryptorOptions{
			Source: e.demo.SourceTopic, Target: e.demo.TargetTopic, Policies: e.cfg.Policies, Engine: e.gw.Engine,
			Kafka: e.kc.Settings(), Reset: e.reset, Logger: e.log,
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.out, "encryptor: %s -> %s under [policy:%s] (Ctrl-C stops)\n", e.demo.SourceTopic, e.demo.TargetTopic, e.demo.TargetTopic)
		if err := br.Run(ctx); err != nil && ctx.Err() == nil {
			return err
		}
		return nil
	},
}

// ConsumerFromEncrypted is demo 2's consumer: prints [encryptor]
// targettopic decrypted.
var ConsumerFromEncrypted = Program{
	Name:  "consumer-from-encrypted",
	Usage: "Demo 2: print the records of [encryptor] targettopic decrypted through Vault, one JSON object per line with a status per record and field.",
	Reset: true, Max: true, Vault: true,
	run: func(ctx context.Context, e *env) error {
		_, err := encrypted.Consume(ctx, e.kc.Settings(), e.gw.Engine, e.follow(e.demo.TargetTopic, "consumer-from-encrypted"), e.out)
		return err
	},
}

// ProducerFileTransfer is demo 3's sender.
var ProducerFileTransfer = Program{
	Name:  "producer-file-transfer",
	Usage: "Demo 3: send every regular file of [large_payload] sourcedir to its topic, encrypted under a fresh Vault data key per file.",
	Vault: true,
	run: func(ctx context.Context, e *env) error {
		p, err := envelopePolicy(e.cfg, e.demo.FileTopic)
		if err != nil {
			return err
		}
		snd, err := files.NewSender(e.kc, e.gw.Transit, e.log)
		if err != nil {
			return err
		}
		_, err = files.SendDir(ctx, snd, files.SendOptions{Dir: e.demo.SourceDir, Topic: e.demo.FileTopic, KEK: p.Envelope.Key, Out: e.out})
		return err
	},
}

// ConsumerFileTransfer is demo 3's receiver.
var ConsumerFileTransfer = Program{
	Name:  "consumer-file-transfer",
	Usage: "Demo 3: write the files of [large_payload] topic into destinationdir, each checked (size and SHA-256) before it is renamed into place.",
	Reset: true, Once: true, Vault: true,
	run: func(ctx context.Context, e *env) error {
		p, err := envelopePolicy(e.cfg, e.demo.FileTopic)
		if err != nil {
			return err
		}
		group := e.demo.ConsumerGroup("consumer-file-transfer")
		if e.reset {
			if err := follow.ResetGroup(ctx, e.kc.Settings(), group); err != nil {
				return err
			}
		}
		_, err = files.Receive(ctx, files.ReceiveOptions{
			Dir: e.demo.DestinationDir, Topic: e.demo.FileTopic, Group: group, KEKs: []string{p.Envelope.Key}, AcceptLegacy: p.AcceptLegacy,
			Kafka: e.kc, Transit: e.gw.Transit, Once: e.once, Out: e.out, Logger: e.log,
		})
		if err != nil && ctx.Err() != nil {
			return nil
		}
		return err
	},
}

// All lists the six programs.
var All = []Program{Producer, Consumer, Encryptor, ConsumerFromEncrypted, ProducerFileTransfer, ConsumerFileTransfer}

func (e *env) follow(topic, program string) follow.Options {
	return follow.Options{Topic: topic, Group: e.demo.ConsumerGroup(program), Reset: e.reset, Max: e.max}
}

func envelopePolicy(cfg *config.File, topic string) (*policy.Policy, error) {
	p, ok := cfg.Policies.For(topic)
	if !ok || p.Mode != policy.Envelope {
		return nil, fmt.Errorf("[large_payload] topic %s needs a [policy:%s] with mode = envelope", topic, topic)
	}
	return p, nil
}
