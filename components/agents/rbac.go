package agents

// The agent's permissions: on its cluster (exactly the synced resources)
// and in kcp (its APIExport, and access to the workspace).

import (
	"encoding/base64"
	"fmt"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kcp-tmc/kcp-tmc/pkg/workload"
)

// rbac grants the agent exactly what it needs on its cluster: the synced
// resources (named, no wildcards) and its own bookkeeping.
func rbac(ctx *pulumi.Context, name string, a Args, opts []pulumi.ResourceOption) error {
	sync := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	rules := rbacv1.PolicyRuleArray{
		rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray([]string{""}), Resources: pulumi.ToStringArray([]string{"namespaces"}),
			Verbs: pulumi.ToStringArray([]string{"get", "list", "watch", "create"})},
	}
	for _, r := range a.Resources {
		rules = append(rules, rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray([]string{r.Group}),
			Resources: pulumi.ToStringArray([]string{r.Plural}), Verbs: pulumi.ToStringArray(sync)})
	}
	rules = append(rules,
		rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray([]string{""}), Resources: pulumi.ToStringArray([]string{"secrets"}),
			Verbs: pulumi.ToStringArray([]string{"get", "list", "watch", "create", "update"})},
		rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray([]string{"apiextensions.k8s.io"}), Resources: pulumi.ToStringArray([]string{"customresourcedefinitions"}),
			Verbs: pulumi.ToStringArray([]string{"get", "list", "watch"})},
		rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray([]string{"syncagent.kcp.io"}), Resources: pulumi.ToStringArray([]string{"publishedresources"}),
			Verbs: pulumi.ToStringArray([]string{"get", "list", "watch"})},
		rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray([]string{"syncagent.kcp.io"}), Resources: pulumi.ToStringArray([]string{"publishedresources/status"}),
			Verbs: pulumi.ToStringArray([]string{"get", "update", "patch"})})
	roleName := "kcp-tmc-" + a.Kind + "-" + a.Cluster
	if _, err := corev1.NewServiceAccount(ctx, name+"-sa", &corev1.ServiceAccountArgs{
		Metadata: workload.Meta(a.Kind, a.Namespace, a.Kind),
	}, opts...); err != nil {
		return fmt.Errorf("agent ServiceAccount: %w", err)
	}
	subject := rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"), Name: pulumi.String(a.Kind), Namespace: pulumi.String(a.Namespace)}}
	if _, err := rbacv1.NewClusterRole(ctx, name+"-clusterrole", &rbacv1.ClusterRoleArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(roleName)}, Rules: rules,
	}, opts...); err != nil {
		return fmt.Errorf("agent ClusterRole: %w", err)
	}
	if _, err := rbacv1.NewClusterRoleBinding(ctx, name+"-clusterrolebinding", &rbacv1.ClusterRoleBindingArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(roleName)},
		RoleRef:  rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("ClusterRole"), Name: pulumi.String(roleName)},
		Subjects: subject,
	}, opts...); err != nil {
		return fmt.Errorf("agent ClusterRoleBinding: %w", err)
	}
	// Leader election and events, in its own namespace only.
	if _, err := rbacv1.NewRole(ctx, name+"-role", &rbacv1.RoleArgs{
		Metadata: workload.Meta(a.Kind, a.Namespace, a.Kind),
		Rules: rbacv1.PolicyRuleArray{
			rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray([]string{"coordination.k8s.io"}), Resources: pulumi.ToStringArray([]string{"leases"}),
				Verbs: pulumi.ToStringArray([]string{"get", "list", "watch", "create", "update", "patch"})},
			rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray([]string{""}), Resources: pulumi.ToStringArray([]string{"events"}),
				Verbs: pulumi.ToStringArray([]string{"create", "patch"})},
		},
	}, opts...); err != nil {
		return fmt.Errorf("agent Role: %w", err)
	}
	if _, err := rbacv1.NewRoleBinding(ctx, name+"-rolebinding", &rbacv1.RoleBindingArgs{
		Metadata: workload.Meta(a.Kind, a.Namespace, a.Kind),
		RoleRef:  rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("Role"), Name: pulumi.String(a.Kind)},
		Subjects: subject,
	}, opts...); err != nil {
		return fmt.Errorf("agent RoleBinding: %w", err)
	}
	return nil
}

// kcpSide creates what kcp needs for the agent, in its workspace: the
// APIExport, the agent's rules on it (api-syncagent's getting-started
// guide, resource names spelled out), and workspace access, without which
// kcp denies every request the agent makes there. With IdentityToken also
// the agent's ServiceAccount and its token Secret, whose token (a Pulumi
// secret) it returns.
func kcpSide(ctx *pulumi.Context, name string, a Args, opts ...pulumi.ResourceOption) (pulumi.StringOutput, error) {
	var token pulumi.StringOutput
	subjects := rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("User"), Name: pulumi.String(User(a.Cluster)), ApiGroup: pulumi.String("rbac.authorization.k8s.io")}}
	if a.Identity == IdentityToken {
		var err error
		if token, err = serviceAccountToken(ctx, name, a, opts); err != nil {
			return token, err
		}
		subjects = rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"), Name: pulumi.String(ServiceAccount(a.Cluster)), Namespace: pulumi.String(kcpNamespace)}}
	}
	if _, err := apiextensions.NewCustomResource(ctx, name+"-apiexport", &apiextensions.CustomResourceArgs{
		ApiVersion: pulumi.String("apis.kcp.io/v1alpha1"), Kind: pulumi.String("APIExport"),
		Metadata:    &metav1.ObjectMetaArgs{Name: pulumi.String(a.APIExport)},
		OtherFields: kubernetes.UntypedArgs{"spec": pulumi.Map{}}, // the agent fills it in
	}, opts...); err != nil {
		return token, fmt.Errorf("APIExport: %w", err)
	}
	rule := func(group, resource string, names []string, verbs ...string) rbacv1.PolicyRuleArgs {
		r := rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray([]string{group}), Resources: pulumi.ToStringArray([]string{resource}), Verbs: pulumi.ToStringArray(verbs)}
		if names != nil {
			r.ResourceNames = pulumi.ToStringArray(names)
		}
		return r
	}
	export := []string{a.APIExport}
	rules := rbacv1.PolicyRuleArray{
		rule("core.kcp.io", "logicalclusters", []string{"cluster"}, "get"),
		rule("apis.kcp.io", "apiexports", export, "get", "list", "watch", "patch", "update"),
		// v0.7.0 lists and watches endpoint slices without a name selector,
		// which a rule with resourceNames cannot allow (kcp answered 403 and
		// the agent never became ready): read-only, in this workspace.
		rule("apis.kcp.io", "apiexportendpointslices", nil, "get", "list", "watch"),
		// The rewatch CronJob annotates the export's slice (rewatch.go).
		rule("apis.kcp.io", "apiexportendpointslices", export, "patch"),
		// update: clusters publishing the same CRD into one workspace share
		// its APIResourceSchema (named by the CRD's hash), and v0.7.0
		// rewrites the schema's agent-name label to its own before it goes
		// on; refused, the second cluster's export never gets the schema
		// (found by make bench-sync with two clusters in root:compute).
		rule("apis.kcp.io", "apiresourceschemas", nil, "get", "list", "watch", "create", "update"),
		// Upstream grants "*" on the export's content; the verbs spelled out are the same set.
		rule("apis.kcp.io", "apiexports/content", export, "get", "list", "watch", "create", "update", "patch", "delete"),
		rule("", "events", nil, "get", "create", "patch", "update"),
	}
	roleName := "kcp-tmc:agent:" + a.Cluster
	if _, err := rbacv1.NewClusterRole(ctx, name+"-kcp-clusterrole", &rbacv1.ClusterRoleArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(roleName)}, Rules: rules,
	}, opts...); err != nil {
		return token, fmt.Errorf("kcp ClusterRole: %w", err)
	}
	for _, b := range []struct{ urn, name, role string }{
		{"-kcp-clusterrolebinding", roleName, roleName},
		{"-kcp-workspace-access", roleName + ":access", WorkspaceAccessRole},
	} {
		if _, err := rbacv1.NewClusterRoleBinding(ctx, name+b.urn, &rbacv1.ClusterRoleBindingArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(b.name)},
			RoleRef:  rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("ClusterRole"), Name: pulumi.String(b.role)},
			Subjects: subjects,
		}, opts...); err != nil {
			return token, fmt.Errorf("kcp ClusterRoleBinding %s: %w", b.name, err)
		}
	}
	return token, nil
}

// serviceAccountToken creates the agent's ServiceAccount in its workspace
// and a kubernetes.io/service-account-token Secret for it: kcp's token
// controller fills in a token that does not expire, is valid in this
// workspace only and dies with the Secret. The provider waits until the
// token is there; the token is read from the Secret's outputs (secret).
func serviceAccountToken(ctx *pulumi.Context, name string, a Args, opts []pulumi.ResourceOption) (pulumi.StringOutput, error) {
	sa := ServiceAccount(a.Cluster)
	meta := func(n string) *metav1.ObjectMetaArgs {
		return &metav1.ObjectMetaArgs{Name: pulumi.String(n), Namespace: pulumi.String(kcpNamespace),
			Labels: pulumi.StringMap{"app.kubernetes.io/part-of": pulumi.String("kcp-tmc"), "kcp-tmc.io/cluster": pulumi.String(a.Cluster)}}
	}
	account, err := corev1.NewServiceAccount(ctx, name+"-kcp-sa", &corev1.ServiceAccountArgs{Metadata: meta(sa)}, opts...)
	if err != nil {
		return pulumi.StringOutput{}, fmt.Errorf("kcp ServiceAccount: %w", err)
	}
	tokenMeta := meta(sa + "-token")
	tokenMeta.Annotations = pulumi.StringMap{"kubernetes.io/service-account.name": pulumi.String(sa)}
	// After the ServiceAccount: kcp deletes a token Secret whose account is missing.
	sec, err := corev1.NewSecret(ctx, name+"-kcp-token", &corev1.SecretArgs{
		Metadata: tokenMeta, Type: pulumi.String("kubernetes.io/service-account-token"),
	}, append(opts, pulumi.DependsOn([]pulumi.Resource{account}))...)
	if err != nil {
		return pulumi.StringOutput{}, fmt.Errorf("kcp token Secret: %w", err)
	}
	return pulumi.ToSecret(sec.Data.MapIndex(pulumi.String("token")).ApplyT(func(v string) (string, error) {
		out, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return "", fmt.Errorf("token Secret %s: data.token is not base64: %w", sa+"-token", err)
		}
		return string(out), nil
	})).(pulumi.StringOutput), nil
}
