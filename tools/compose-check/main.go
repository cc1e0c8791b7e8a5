// compose-check validates docker-compose.yml with compose-go (the loader
// Docker Compose itself uses, including the Compose specification's JSON
// schema) and checks that it stays parallel to scripts/stack: the same
// services, Kratos image and ports.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-check docker-compose.yml")
		os.Exit(2)
	}
	if err := check(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "compose-check:", err)
		os.Exit(1)
	}
}

func check(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	options, err := cli.NewProjectOptions(
		[]string{abs},
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		cli.WithName("kratos-passkeys"),
		// ${KRATOS_VERSION} interpolates from the environment, as with docker compose.
		cli.WithOsEnv,
	)
	if err != nil {
		return err
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return fmt.Errorf("invalid compose file: %w", err)
	}

	want := []string{"event-receiver", "kratos", "kratos-migrate", "kratos-passkeys", "postgres"}
	got := project.ServiceNames()
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		return fmt.Errorf("services are %v, want %v", got, want)
	}
	// The same release as the native scripts: KRATOS_VERSION, else v1.3.1.
	release := os.Getenv("KRATOS_VERSION")
	if release == "" {
		release = "v1.3.1"
	}
	for _, name := range []string{"kratos", "kratos-migrate"} {
		if image := project.Services[name].Image; image != "oryd/kratos:"+release {
			return fmt.Errorf("%s uses image %q, want oryd/kratos:%s", name, image, release)
		}
	}
	if project.Services["kratos-passkeys"].Build == nil {
		return fmt.Errorf("kratos-passkeys must be built from the repository's Dockerfile")
	}
	// The same ports as scripts/stack.
	published := map[string][]string{
		"kratos":          {"4433", "4434"},
		"kratos-passkeys": {"8080", "8081"},
		"event-receiver":  {"8191"},
	}
	for service, ports := range published {
		seen := map[string]bool{}
		for _, p := range project.Services[service].Ports {
			seen[p.Published] = true
		}
		for _, p := range ports {
			if !seen[p] {
				return fmt.Errorf("%s does not publish port %s", service, p)
			}
		}
	}
	fmt.Printf("docker-compose.yml is valid: %d services (%s)\n", len(got), strings.Join(got, ", "))
	return nil
}
