// The node's pod sandbox ("pause") binary: written here, no dependencies.
module github.com/ccm-issuer/ccm-issuer/e2e-tools/pause

go 1.24.0
