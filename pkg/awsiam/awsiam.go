// Package awsiam writes the IAM policy documents kcp-tmc's AWS resources
// carry, from typed statements, so no component formats policy JSON by hand.
package awsiam

import (
	"encoding/json"
	"fmt"
)

// Statement is one statement of an IAM policy document.
type Statement struct {
	Sid       string         `json:"Sid,omitempty"`
	Effect    string         `json:"Effect"`
	Principal any            `json:"Principal,omitempty"`
	Action    any            `json:"Action"`
	Resource  any            `json:"Resource,omitempty"`
	Condition map[string]any `json:"Condition,omitempty"`
}

// Policy is the policy document of statements.
func Policy(statements ...Statement) (string, error) {
	b, err := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": statements})
	if err != nil {
		return "", fmt.Errorf("policy JSON: %w", err)
	}
	return string(b), nil
}

// ServiceAccountTrust is the trust policy of an IRSA role: exactly one
// Kubernetes ServiceAccount may assume it, through the cluster's IAM OIDC
// provider (issuer without https://). Both the subject and the audience are
// pinned: another ServiceAccount or namespace presents a different sub, a
// token minted for another audience a different aud.
func ServiceAccountTrust(providerARN, issuer, namespace, serviceAccount string) (string, error) {
	return Policy(Statement{
		Effect:    "Allow",
		Principal: map[string]string{"Federated": providerARN},
		Action:    "sts:AssumeRoleWithWebIdentity",
		Condition: map[string]any{"StringEquals": map[string]string{
			issuer + ":sub": "system:serviceaccount:" + namespace + ":" + serviceAccount,
			issuer + ":aud": "sts.amazonaws.com",
		}},
	})
}
