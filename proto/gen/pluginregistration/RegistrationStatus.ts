// Original file: k8s.io/kubelet@v0.36.3/pkg/apis/pluginregistration/v1/api.proto


export interface RegistrationStatus {
  'pluginRegistered'?: (boolean);
  'error'?: (string);
}

export interface RegistrationStatus__Output {
  'pluginRegistered': (boolean);
  'error': (string);
}
