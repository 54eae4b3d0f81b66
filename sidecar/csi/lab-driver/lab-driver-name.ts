/** The lab driver's CSI name (a module of its own: the CLI shows it without loading the driver). */
export const LAB_DRIVER_NAME = 'lab.csi.blockmirror.io';
