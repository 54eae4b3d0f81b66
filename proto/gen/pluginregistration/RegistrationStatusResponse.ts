// Original file: k8s.io/kubelet@v0.36.3/pkg/apis/pluginregistration/v1/api.proto


export interface RegistrationStatusResponse {
}

export interface RegistrationStatusResponse__Output {
}
