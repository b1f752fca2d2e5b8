package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

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
	token.AddCommand(create)
	return token
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
