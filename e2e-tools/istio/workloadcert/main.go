// istio-workload-cert requests one workload certificate from istiod's CA service the way the
// sidecar agent (pilot-agent) does: the agent's own code generates the key and the CSR for the
// SPIFFE identity, and istio's Citadel client sends IstioCertificateService/CreateCertificate
// over TLS (trusting the mesh root, e.g. the istio-ca-root-cert ConfigMap) with the
// service-account token as bearer credentials, which istiod checks with a TokenReview.
//
// The private key goes to --key-out (mode 0600); stdout gets one JSON object
// {"certChain": [...]} with the PEM strings exactly as istiod returned them (leaf first, root
// last). Errors go to stderr with exit status 1.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"istio.io/istio/pkg/security"
	"istio.io/istio/pkg/spiffe"
	"istio.io/istio/security/pkg/credentialfetcher/plugin"
	"istio.io/istio/security/pkg/nodeagent/caclient/providers/citadel"
	pkiutil "istio.io/istio/security/pkg/pki/util"
)

type response struct {
	CertChain []string `json:"certChain"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "istio-workload-cert: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	caAddr := flag.String("ca-addr", "", "istiod's secure gRPC address (host:port of --secureGRPCAddr, 15012 in a cluster)")
	caSAN := flag.String("ca-san", "istiod.istio-system.svc", "name expected in istiod's serving certificate")
	rootCert := flag.String("root-cert", "", "PEM file with the root(s) to trust for istiod's serving certificate")
	token := flag.String("token", "", "file with the service-account token (audience istio-ca)")
	clusterID := flag.String("cluster-id", "Kubernetes", "cluster id sent as the ClusterID header, as the agent does")
	trustDomain := flag.String("trust-domain", "cluster.local", "trust domain of the SPIFFE identity in the CSR")
	namespace := flag.String("namespace", "", "workload namespace")
	serviceAccount := flag.String("service-account", "", "workload service account")
	ttl := flag.Duration("ttl", 24*time.Hour, "requested validity (the agent's SECRET_TTL default is 24h)")
	ecc := flag.Bool("ecc", false, "ECDSA P-256 key (the agent's ECC_SIGNATURE_ALGORITHM=ECDSA); RSA 2048 otherwise, the agent's default")
	keyOut := flag.String("key-out", "", "file to write the private key to")
	flag.Parse()
	for name, v := range map[string]string{"--ca-addr": *caAddr, "--root-cert": *rootCert, "--token": *token, "--namespace": *namespace, "--service-account": *serviceAccount, "--key-out": *keyOut} {
		if v == "" {
			return fmt.Errorf("%s is required", name)
		}
	}

	id := spiffe.Identity{TrustDomain: *trustDomain, Namespace: *namespace, ServiceAccount: *serviceAccount}
	opts := pkiutil.CertOptions{Host: id.String(), RSAKeySize: 2048}
	if *ecc {
		opts.ECSigAlg = pkiutil.EcdsaSigAlg
	}
	csrPEM, keyPEM, err := pkiutil.GenCSR(opts)
	if err != nil {
		return fmt.Errorf("generating the key and CSR: %w", err)
	}

	client, err := citadel.NewCitadelClient(&security.Options{
		CAEndpoint:    *caAddr,
		CAEndpointSAN: *caSAN,
		ClusterID:     *clusterID,
		CredFetcher:   plugin.CreateTokenPlugin(*token),
	}, &citadel.TLSOptions{RootCert: *rootCert})
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", *caAddr, err)
	}
	defer client.Close()
	chain, err := client.CSRSign(csrPEM, int64(ttl.Seconds()))
	if err != nil {
		return err
	}
	if err := os.WriteFile(*keyOut, keyPEM, 0o600); err != nil {
		return fmt.Errorf("writing the key: %w", err)
	}
	return json.NewEncoder(os.Stdout).Encode(response{CertChain: chain})
}
