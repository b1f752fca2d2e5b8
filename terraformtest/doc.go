// Package terraformtest checks the Terraform modules under terraform/ and
// the demo configuration getting_started.ini.orig against each other,
// without running Terraform or contacting Confluent Cloud or Vault.
//
// The tests parse every .tf file with hclparse, check that each module
// declares the variables it references, evaluate variable defaults and the
// parts of each module that depend only on them (locals, for_each, resource
// names, policy documents), and compare the result with what the product
// needs: the transit keys the ini's policies use, the demo's topic names,
// least-privilege Vault policies, and no credential written into a file.
//
// The package has no non-test code; run it with
//
//	go test ./terraformtest/
package terraformtest
