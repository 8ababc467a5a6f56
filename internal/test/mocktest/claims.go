package mocktest

import (
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// ClaimsOn answers volume claims as a running stack's state has them: on
// StorageClass Class, whatever the program asks for (claims made with
// workload.KeepClaimClass ignore a new class, so their state keeps the
// class they were made on).
type ClaimsOn struct {
	*Recorder
	Class string
}

func (m ClaimsOn) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	id, state, err := m.Recorder.NewResource(args)
	if err == nil && args.TypeToken == "kubernetes:core/v1:PersistentVolumeClaim" {
		state = state.Copy()
		spec := state["spec"].ObjectValue().Copy()
		spec["storageClassName"] = resource.NewStringProperty(m.Class)
		state["spec"] = resource.NewObjectProperty(spec)
	}
	return id, state, err
}
