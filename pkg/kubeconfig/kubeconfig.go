// Package kubeconfig builds the kubeconfigs kcp-tmc renders — for kcp's
// shards, the front-proxy, each agent and an EKS cluster — from client-go's
// own types, so each is exactly what client-go reads.
package kubeconfig

import (
	"encoding/json"
	"fmt"

	"k8s.io/client-go/tools/clientcmd/api"
	v1 "k8s.io/client-go/tools/clientcmd/api/v1"
)

// Config is one cluster, one user and the context that joins them.
type Config struct {
	// Context names the context, which is the current one; Cluster and User
	// name their entries (default: Context).
	Context, Cluster, User string
	Server                 string
	// CAFile (a path) or CAData (PEM) verifies the server; neither means the
	// system's roots.
	CAFile string
	CAData []byte
	// The user: a client certificate and key (paths), a token file (read
	// again as it changes), a token, or a credential plugin.
	CertFile, KeyFile, TokenFile, Token string
	Exec                                *api.ExecConfig
}

// Render is c as a kubeconfig file: client-go's serialized (v1) types as
// indented JSON, which client-go (and kubectl) read like YAML. Not YAML:
// converting to it costs ≈80 KiB per kubeconfig, and every physical cluster
// renders one (stacks' TestPerClusterCost: 5086 vs 5004 KiB per cluster).
func (c Config) Render() (string, error) {
	if c.Context == "" || c.Server == "" {
		return "", fmt.Errorf("kubeconfig %q: a context and a server are required", c.Context)
	}
	cluster, user := orDefault(c.Cluster, c.Context), orDefault(c.User, c.Context)
	var exec *v1.ExecConfig
	if e := c.Exec; e != nil {
		exec = &v1.ExecConfig{APIVersion: e.APIVersion, Command: e.Command, Args: e.Args, InteractiveMode: v1.ExecInteractiveMode(e.InteractiveMode)}
	}
	b, err := json.MarshalIndent(v1.Config{
		APIVersion: "v1", Kind: "Config",
		Clusters:       []v1.NamedCluster{{Name: cluster, Cluster: v1.Cluster{Server: c.Server, CertificateAuthority: c.CAFile, CertificateAuthorityData: c.CAData}}},
		AuthInfos:      []v1.NamedAuthInfo{{Name: user, AuthInfo: v1.AuthInfo{ClientCertificate: c.CertFile, ClientKey: c.KeyFile, TokenFile: c.TokenFile, Token: c.Token, Exec: exec}}},
		Contexts:       []v1.NamedContext{{Name: c.Context, Context: v1.Context{Cluster: cluster, AuthInfo: user}}},
		CurrentContext: c.Context,
	}, "", "  ")
	if err != nil {
		return "", fmt.Errorf("kubeconfig %s: %w", c.Context, err)
	}
	return string(b), nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
