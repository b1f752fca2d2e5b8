// Package terraformtest checks the Terraform modules under terraform/ and
// the demo configuration getting_started.ini.orig against each other and
// against what `gateway provision` creates, without running `terraform
// apply` or contacting Confluent Cloud.
//
// The tests parse every .tf file with hclparse, check that each module
// declares the variables it references, evaluate variable defaults and the
// parts of each module that depend only on them (locals, for_each, resource
// names, the rendered Vault policies), and compare the result with what the
// product needs: the transit keys the ini's policies use, the demo's topic
// names, least-privilege Vault policies, and no credential written into a
// file.
//
// TestVaultMatchesProvision runs lifecycle.Provision for the embedded
// default configuration against a real Vault dev server (devenv, the
// .bin/vault binary) and checks that terraform/vault declares the same
// policies (names, paths, capabilities, text), AppRole roles, transit keys
// and mounts. Where the terraform binary is installed,
// TestPolicyLocalsMatchTerraform also evaluates terraform/vault/policies.tf
// with Terraform itself (terraform console, no provider needed) and
// compares it with this package's evaluator.
//
// The package has no non-test code; run it with
//
//	go test ./terraformtest/
package terraformtest
