// SPDX-License-Identifier: GPL-2.0
// edu_msi: a tiny Linux driver for QEMU's edu device (1234:11e8), test tooling for the lab's L2
// guests. It enables one MSI vector and counts its interrupts, which appear in /proc/interrupts as
// "edu-msi". The interrupts are raised from userspace through the sysfs BAR0 mapping (edu's
// "raise interrupt" register at 0x60); the handler acknowledges them (0x64), as a real driver
// would, so every raise is one interrupt.
//
// With dma_rounds=N it also runs N DMA roundtrips through the kernel's DMA API at probe (a
// buffer mapped to the device, copied RAM -> edu, a second one mapped from it, copied back, the
// data compared, both unmapped): behind an IOMMU every map and unmap is a change to the guest's
// IOMMU tables, which is what the vIOMMU lab scenario drives. The result is logged as
// "edu-msi: DMA API: N roundtrips verified" or "edu-msi: DMA API: FAIL ...".
//
// With irq_rounds=N it times N interrupt roundtrips at probe (raise through BAR0, the MSI reaches
// the handler, which acknowledges it and wakes the loop for the next), logged as
// "edu-msi: MSI: N roundtrips in T us".
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/dma-mapping.h>
#include <linux/interrupt.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/slab.h>

#define EDU_IRQ_STATUS 0x24
#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK 0x64
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_COUNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_DMA_START 1
#define EDU_DMA_TO_RAM 2
#define EDU_BUFFER 0x40000
#define DMA_BYTES 2048

static int dma_rounds;
module_param(dma_rounds, int, 0444);
MODULE_PARM_DESC(dma_rounds, "DMA API roundtrips to run at probe");
static int irq_rounds;
module_param(irq_rounds, int, 0444);
MODULE_PARM_DESC(irq_rounds, "MSI roundtrips to time at probe");

struct edu_msi {
	void __iomem *bar0;
	int irq;
	struct completion done;
};

static irqreturn_t edu_msi_handler(int irq, void *data)
{
	struct edu_msi *edu = data;
	u32 status = ioread32(edu->bar0 + EDU_IRQ_STATUS);

	if (!status)
		return IRQ_NONE;
	iowrite32(status, edu->bar0 + EDU_IRQ_ACK);
	complete(&edu->done);
	return IRQ_HANDLED;
}

static void edu_irq_rounds(struct pci_dev *pdev, struct edu_msi *edu, int rounds)
{
	ktime_t start = ktime_get();
	int r;

	for (r = 0; r < rounds; r++) {
		reinit_completion(&edu->done);
		iowrite32(1, edu->bar0 + EDU_IRQ_RAISE);
		if (!wait_for_completion_timeout(&edu->done, HZ)) {
			dev_err(&pdev->dev, "edu-msi: MSI: FAIL: roundtrip %d timed out\n", r);
			return;
		}
	}
	dev_info(&pdev->dev, "edu-msi: MSI: %d roundtrips in %lld us\n", rounds,
		 ktime_us_delta(ktime_get(), start));
}

/* One edu DMA of DMA_BYTES between `bus` (a DMA address) and edu's buffer; false on timeout. */
static bool edu_dma(void __iomem *bar0, dma_addr_t bus, bool to_ram)
{
	int i;

	writeq(to_ram ? EDU_BUFFER : bus, bar0 + EDU_DMA_SRC);
	writeq(to_ram ? bus : EDU_BUFFER, bar0 + EDU_DMA_DST);
	writeq(DMA_BYTES, bar0 + EDU_DMA_COUNT);
	writeq(EDU_DMA_START | (to_ram ? EDU_DMA_TO_RAM : 0), bar0 + EDU_DMA_CMD);
	for (i = 0; i < 300; i++) { /* edu finishes on a 100 ms timer. */
		if (!(readq(bar0 + EDU_DMA_CMD) & EDU_DMA_START))
			return true;
		msleep(10);
	}
	return false;
}

/* `buf` mapped for the device, one edu DMA to it (to_ram) or from it, unmapped again. */
static int edu_dma_mapped(struct pci_dev *pdev, void __iomem *bar0, void *buf, bool to_ram,
			  dma_addr_t *bus)
{
	const enum dma_data_direction dir = to_ram ? DMA_FROM_DEVICE : DMA_TO_DEVICE;
	int ret = 0;

	*bus = dma_map_single(&pdev->dev, buf, DMA_BYTES, dir);
	if (dma_mapping_error(&pdev->dev, *bus))
		return -EIO;
	if (!edu_dma(bar0, *bus, to_ram))
		ret = -ETIMEDOUT;
	dma_unmap_single(&pdev->dev, *bus, DMA_BYTES, dir);
	return ret;
}

static int edu_dma_rounds(struct pci_dev *pdev, void __iomem *bar0, int rounds)
{
	u8 *src = kmalloc(DMA_BYTES, GFP_KERNEL), *dst = kmalloc(DMA_BYTES, GFP_KERNEL);
	ktime_t start = ktime_get();
	int r, i, ret = 0;

	if (!src || !dst) {
		ret = -ENOMEM;
		goto out;
	}
	for (r = 0; r < rounds && ret == 0; r++) {
		dma_addr_t to, from;

		for (i = 0; i < DMA_BYTES; i++)
			src[i] = (u8)(i * 7 + r);
		memset(dst, 0, DMA_BYTES);
		ret = edu_dma_mapped(pdev, bar0, src, false, &to);
		if (ret == 0)
			ret = edu_dma_mapped(pdev, bar0, dst, true, &from);
		if (ret)
			break;
		if (memcmp(src, dst, DMA_BYTES) != 0)
			ret = -EILSEQ;
		if (r == 0)
			dev_info(&pdev->dev, "edu-msi: DMA API: round 0 at bus addresses %pad, %pad\n",
				 &to, &from);
	}
	if (ret)
		dev_err(&pdev->dev, "edu-msi: DMA API: FAIL in round %d: %d\n", r, ret);
	else
		dev_info(&pdev->dev, "edu-msi: DMA API: %d roundtrips verified in %lld us\n", rounds,
			 ktime_us_delta(ktime_get(), start));
out:
	kfree(src);
	kfree(dst);
	return ret;
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
	init_completion(&edu->done);
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
	if (irq_rounds > 0) {
		pci_set_master(pdev); /* An MSI is a memory write: the device must master the bus. */
		edu_irq_rounds(pdev, edu, irq_rounds);
	}
	if (dma_rounds > 0) {
		if (dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(32)) == 0) {
			pci_set_master(pdev);
			edu_dma_rounds(pdev, edu->bar0, dma_rounds);
		} else {
			dev_err(&pdev->dev, "edu-msi: DMA API: FAIL: no 32-bit DMA mask\n");
		}
	}
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
