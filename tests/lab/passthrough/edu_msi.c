// SPDX-License-Identifier: GPL-2.0
// edu_msi: a tiny Linux driver for QEMU's edu device (1234:11e8), test tooling for the lab's L2
// guests. It enables one MSI vector and counts its interrupts, which appear in /proc/interrupts as
// "edu-msi". The interrupts are raised from userspace through the sysfs BAR0 mapping (edu's
// "raise interrupt" register at 0x60); the handler acknowledges them (0x64), as a real driver
// would, so every raise is one interrupt.
#include <linux/interrupt.h>
#include <linux/module.h>
#include <linux/pci.h>

#define EDU_IRQ_STATUS 0x24
#define EDU_IRQ_ACK 0x64

struct edu_msi {
	void __iomem *bar0;
	int irq;
};

static irqreturn_t edu_msi_handler(int irq, void *data)
{
	struct edu_msi *edu = data;
	u32 status = ioread32(edu->bar0 + EDU_IRQ_STATUS);

	if (!status)
		return IRQ_NONE;
	iowrite32(status, edu->bar0 + EDU_IRQ_ACK);
	return IRQ_HANDLED;
}

static int edu_msi_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct edu_msi *edu;
	int ret;

	edu = devm_kzalloc(&pdev->dev, sizeof(*edu), GFP_KERNEL);
	if (!edu)
		return -ENOMEM;
	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;
	edu->bar0 = pcim_iomap(pdev, 0, 0);
	if (!edu->bar0)
		return -ENOMEM;
	/* MSI only: the point is to prove MSI reaches the guest. */
	ret = pci_alloc_irq_vectors(pdev, 1, 1, PCI_IRQ_MSI);
	if (ret < 0)
		return ret;
	edu->irq = pci_irq_vector(pdev, 0);
	ret = devm_request_irq(&pdev->dev, edu->irq, edu_msi_handler, 0, "edu-msi", edu);
	if (ret) {
		pci_free_irq_vectors(pdev);
		return ret;
	}
	pci_set_drvdata(pdev, edu);
	dev_info(&pdev->dev, "edu-msi: MSI on irq %d\n", edu->irq);
	return 0;
}

static void edu_msi_remove(struct pci_dev *pdev)
{
	struct edu_msi *edu = pci_get_drvdata(pdev);

	devm_free_irq(&pdev->dev, edu->irq, edu);
	pci_free_irq_vectors(pdev);
}

static const struct pci_device_id edu_msi_ids[] = {
	{ PCI_DEVICE(0x1234, 0x11e8) },
	{ 0 }
};
MODULE_DEVICE_TABLE(pci, edu_msi_ids);

static struct pci_driver edu_msi_driver = {
	.name = "edu_msi",
	.id_table = edu_msi_ids,
	.probe = edu_msi_probe,
	.remove = edu_msi_remove,
};
module_pci_driver(edu_msi_driver);

MODULE_DESCRIPTION("MSI test driver for QEMU's edu device (vmmkit lab tooling)");
MODULE_LICENSE("GPL");
