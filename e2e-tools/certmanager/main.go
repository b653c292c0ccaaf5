// Command cm-controller is a small cert-manager controller runner for ccm-issuer's e2e tests.
//
// cert-manager's own controller binary lives in a nested module that cannot be fetched from
// the Go module proxy, so this runner drives the same upstream controllers through
// cert-manager's public pkg/controller API: it constructs the selected controllers, starts
// the shared informer factories, waits until their caches have synced and then prints the
// single line "ready" on stdout. Everything else (klog output) goes to stderr.
//
// Deliberately absent compared with upstream: leader election, the webhook, metrics/healthz
// servers, config files and feature-gate flags. SIGTERM/SIGINT stop the controllers and the
// process exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"github.com/cert-manager/cert-manager/pkg/controller"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// Controllers register themselves with pkg/controller in init().
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"

	// Issuer implementations used by the issuers/clusterissuers controllers.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

const defaultControllers = "certificates-trigger,certificates-issuing,certificates-key-manager," +
	"certificates-request-manager,certificates-readiness,certificates-revision-manager," +
	"certificaterequests-approver,issuers,clusterissuers," +
	"certificaterequests-issuer-ca,certificaterequests-issuer-selfsigned"

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "cm-controller: %v\n", err)
		logf.FlushLogs()
		os.Exit(1)
	}
	logf.FlushLogs()
}

func run() error {
	fs := flag.NewFlagSet("cm-controller", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "path to a kubeconfig file (required)")
	clusterResourceNamespace := fs.String("cluster-resource-namespace", "kube-system",
		"namespace for resources referenced by ClusterIssuers")
	controllers := fs.String("controllers", defaultControllers, "comma-separated list of controllers to run")
	workers := fs.Int("workers", 5, "workers per controller")
	qps := fs.Float64("kube-api-qps", 100, "client QPS towards the apiserver")
	burst := fs.Int("kube-api-burst", 200, "client burst towards the apiserver")
	shutdownTimeout := fs.Duration("shutdown-timeout", 10*time.Second, "how long to wait for controllers on shutdown")
	verbosity := fs.String("v", "2", "klog verbosity (cert-manager: 2 info, 4 debug)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if *kubeconfig == "" {
		return errors.New("--kubeconfig is required")
	}

	logf.InitLogs()
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	if err := klogFlags.Set("v", *verbosity); err != nil {
		return fmt.Errorf("--v: %w", err)
	}
	log := logf.Log.WithName("cm-controller")

	known := controller.Known()
	var names []string
	for _, n := range strings.Split(*controllers, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if _, ok := known[n]; !ok {
			avail := make([]string, 0, len(known))
			for k := range known {
				avail = append(avail, k)
			}
			sort.Strings(avail)
			return fmt.Errorf("unknown controller %q (available: %s)", n, strings.Join(avail, ","))
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		return errors.New("--controllers selects no controller")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx = logf.NewContext(ctx, log)

	factory, err := controller.NewContextFactory(ctx, controller.ContextOptions{
		Kubeconfig:         *kubeconfig,
		KubernetesAPIQPS:   float32(*qps),
		KubernetesAPIBurst: *burst,
		IssuerOptions: controller.IssuerOptions{
			ClusterResourceNamespace: *clusterResourceNamespace,
		},
		CertificateOptions: controller.CertificateOptions{
			// Upstream default for --copied-annotation-prefixes.
			CopiedAnnotationPrefixes: []string{"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/"},
		},
	})
	if err != nil {
		return fmt.Errorf("building controller context factory: %w", err)
	}
	base, err := factory.Build()
	if err != nil {
		return fmt.Errorf("building controller context: %w", err)
	}

	// Construct every controller first: constructors request the informers they need from
	// the shared factories, which must happen before the factories are started.
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	for _, n := range names {
		iface, err := known[n](factory)
		if err != nil {
			return fmt.Errorf("constructing controller %s: %w", n, err)
		}
		log.Info("starting controller", "controller", n)
		wg.Add(1)
		go func(name string, c controller.Interface) {
			defer wg.Done()
			if err := c.Run(*workers, runCtx); err != nil {
				errs <- fmt.Errorf("controller %s: %w", name, err)
			}
		}(n, iface)
	}

	base.SharedInformerFactory.Start(runCtx.Done())
	base.KubeSharedInformerFactory.Start(runCtx.Done())
	base.HTTP01ResourceMetadataInformersFactory.Start(runCtx.Done())

	for typ, ok := range base.SharedInformerFactory.WaitForCacheSync(runCtx.Done()) {
		if !ok {
			return fmt.Errorf("informer cache for %v did not sync", typ)
		}
	}
	for typ, ok := range base.KubeSharedInformerFactory.WaitForCacheSync(runCtx.Done()) {
		if !ok {
			return fmt.Errorf("informer cache for %v did not sync", typ)
		}
	}
	for typ, ok := range base.HTTP01ResourceMetadataInformersFactory.WaitForCacheSync(runCtx.Done()) {
		if !ok {
			return fmt.Errorf("informer cache for %v did not sync", typ)
		}
	}
	if runCtx.Err() != nil {
		return nil // stopped before ready
	}
	log.Info("informer caches synced", "controllers", strings.Join(names, ","))
	fmt.Fprintln(os.Stdout, "ready")
	_ = os.Stdout.Sync()

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("signal received, shutting down")
	case runErr = <-errs:
	}
	cancelRun()

	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(*shutdownTimeout):
		log.Info("controllers did not stop in time", "timeout", shutdownTimeout.String())
	}
	return runErr
}
