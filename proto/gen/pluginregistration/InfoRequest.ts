// Original file: k8s.io/kubelet@v0.36.3/pkg/apis/pluginregistration/v1/api.proto


export interface InfoRequest {
}

export interface InfoRequest__Output {
}
