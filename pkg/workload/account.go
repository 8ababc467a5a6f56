package workload

import (
	"fmt"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Rule allows verbs on resources of an API group, only on the objects
// named when names are given (resourceNames: no list of all, no create).
func Rule(group, resource string, names, verbs []string) rbacv1.PolicyRuleArgs {
	r := rbacv1.PolicyRuleArgs{ApiGroups: pulumi.ToStringArray([]string{group}),
		Resources: pulumi.ToStringArray([]string{resource}), Verbs: pulumi.ToStringArray(verbs)}
	if len(names) > 0 {
		r.ResourceNames = pulumi.ToStringArray(names)
	}
	return r
}

// Account is a ServiceAccount bound to a Role of its own.
type Account struct {
	// Name is the ServiceAccount's, as an output: a pod spec naming it
	// waits for it.
	Name pulumi.StringOutput
	// Binding grants the Role: what runs as the account depends on it, so
	// that its first request is not refused.
	Binding pulumi.Resource
}

// NewAccount registers a ServiceAccount, a Role of rules and the
// RoleBinding of the two, each named component in namespace (Pulumi names
// urn-sa, urn-role, urn-binding): the identity of one of the stack's Jobs
// that calls the Kubernetes API.
func NewAccount(ctx *pulumi.Context, urn, namespace, component string, rules rbacv1.PolicyRuleArray, opts ...pulumi.ResourceOption) (Account, error) {
	sa, err := corev1.NewServiceAccount(ctx, urn+"-sa", &corev1.ServiceAccountArgs{
		Metadata: Meta(component, namespace, component),
	}, opts...)
	if err != nil {
		return Account{}, fmt.Errorf("ServiceAccount %s: %w", component, err)
	}
	role, err := rbacv1.NewRole(ctx, urn+"-role", &rbacv1.RoleArgs{
		Metadata: Meta(component, namespace, component), Rules: rules,
	}, opts...)
	if err != nil {
		return Account{}, fmt.Errorf("Role %s: %w", component, err)
	}
	name := sa.Metadata.Name().Elem()
	binding, err := rbacv1.NewRoleBinding(ctx, urn+"-binding", &rbacv1.RoleBindingArgs{
		Metadata: Meta(component, namespace, component),
		RoleRef:  rbacv1.RoleRefArgs{ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("Role"), Name: role.Metadata.Name().Elem()},
		Subjects: rbacv1.SubjectArray{rbacv1.SubjectArgs{Kind: pulumi.String("ServiceAccount"), Name: name, Namespace: pulumi.String(namespace)}},
	}, opts...)
	if err != nil {
		return Account{}, fmt.Errorf("RoleBinding %s: %w", component, err)
	}
	return Account{Name: name, Binding: binding}, nil
}
