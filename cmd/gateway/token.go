package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kafkagate/kafkagate/internal/access"
	"github.com/kafkagate/kafkagate/internal/access/sasl"
	"github.com/kafkagate/kafkagate/internal/httpapi"
)

func newToken() *cobra.Command {
	token := &cobra.Command{Use: "token", Short: "Manage the bearer tokens of the access file ([kafkagate] access_file)"}
	var principal, rights, accessFile string
	create := &cobra.Command{
		Use:   "new",
		Short: "Make a random bearer token; print it once, with the access file line that holds only its hash",
		Long: `Make a random 256-bit bearer token and print, on standard output, the token
(first line) and the access file line for it (second line):

  token sha256:<hex> <principal> <rights...>

The token is shown once and stored nowhere: the access file keeps only its
SHA-256. With --access-file the line is also appended to that file
(created with mode 0600 if absent).

Rights: produce:<topic>, consume:<topic> (a topic may be * or end with *),
admin, metrics. See docs/security.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := httpapi.CheckPrincipalName(principal); err != nil {
				return fmt.Errorf("--principal: %w", err)
			}
			grants, err := httpapi.ParseGrants(rights)
			if err != nil {
				return fmt.Errorf("--rights: %w", err)
			}
			tok, hash, err := httpapi.NewToken()
			if err != nil {
				return err
			}
			line := httpapi.TokenLine(hash, principal, grants)
			if accessFile != "" {
				if err := appendAccessLine(accessFile, line); err != nil {
					return err
				}
			}
			if _, err := fmt.Fprintf(cmd.OutOrStdout(), "%s\n%s\n", tok, line); err != nil {
				return err
			}
			note := "the token (first line) is shown once and stored nowhere; append the second line to the access file"
			if accessFile != "" {
				note = "the token (first line) is shown once and stored nowhere; its hash was appended to " + accessFile
			}
			fmt.Fprintln(cmd.ErrOrStderr(), note)
			return nil
		},
	}
	create.Flags().StringVar(&principal, "principal", "", "principal name (letters, digits, . _ - @), logged with each request (required)")
	create.Flags().StringVar(&rights, "rights", "", `rights, space- or comma-separated, e.g. "produce:purchases consume:*" (required)`)
	create.Flags().StringVar(&accessFile, "access-file", "", "also append the line to this access file")
	token.AddCommand(create, newTokenSASL())
	return token
}

// newTokenSASL prints the access file line of a Kafka SASL user.
func newTokenSASL() *cobra.Command {
	var principal, rights, accessFile string
	var iterations int
	cmd := &cobra.Command{
		Use:   "sasl <username>",
		Short: "Print the access file line of a Kafka SASL user (PLAIN, SCRAM) for a password read from standard input",
		Long: `Read a password (the first line of standard input) and print the access
file line of a Kafka SASL user of the proxy:

  sasl <username> scram-sha-256:<iterations>:<salt>:<StoredKey>:<ServerKey>,scram-sha-512:... <principal> <rights...>

The line holds SCRAM stored credentials (RFC 5802), never the password.
Clients log in with SASL PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. With
--access-file the line is also appended to that file (created with mode
0600 if absent). See docs/security.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			user := args[0]
			if err := access.CheckSASLUsername(user); err != nil {
				return err
			}
			if principal == "" {
				principal = user
			}
			if err := access.CheckPrincipalName(principal); err != nil {
				return fmt.Errorf("--principal: %w", err)
			}
			grants, err := access.ParseGrants(rights)
			if err != nil {
				return fmt.Errorf("--rights: %w", err)
			}
			pw, err := bufio.NewReaderSize(cmd.InOrStdin(), 4096).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("reading the password from standard input: %w", err)
			}
			pw = strings.TrimRight(pw, "\r\n")
			if pw == "" {
				return errors.New("no password on standard input (give it as the first line)")
			}
			creds, err := sasl.NewCredentials(pw, iterations)
			if err != nil {
				return err
			}
			line := access.SASLLine(user, creds, principal, grants)
			if accessFile != "" {
				if err := appendAccessLine(accessFile, line); err != nil {
					return err
				}
			}
			if _, err := fmt.Fprintln(cmd.OutOrStdout(), line); err != nil {
				return err
			}
			if accessFile != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "appended to "+accessFile)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&principal, "principal", "", "principal name (letters, digits, . _ - @); default the username")
	cmd.Flags().StringVar(&rights, "rights", "", `rights, space- or comma-separated, e.g. "produce:purchases consume:*" (required)`)
	cmd.Flags().StringVar(&accessFile, "access-file", "", "also append the line to this access file")
	cmd.Flags().IntVar(&iterations, "iterations", access.MinSCRAMIterations, "PBKDF2 iterations of the stored credentials (4096 to 1000000)")
	return cmd
}

// appendAccessLine appends line to an access file, which must parse with
// it.
func appendAccessLine(path, line string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("access file: %w", err)
	}
	if len(old) > 0 && old[len(old)-1] != '\n' {
		line = "\n" + line
	}
	if _, err := httpapi.ParseAccess(strings.NewReader(string(old) + line + "\n")); err != nil {
		return fmt.Errorf("%s: not appending: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("access file: %w", err)
	}
	if _, err := io.WriteString(f, line+"\n"); err != nil {
		f.Close()
		return fmt.Errorf("access file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("access file %s: %w", path, err)
	}
	return nil
}
